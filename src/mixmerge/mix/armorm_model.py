"""ArmoRM's architecture, implemented here so the checkpoint loads without running hub code.

RLHFlow/ArmoRM-Llama3-8B-v0.1 ships its model class as custom code (`trust_remote_code`), and
that code imports `LLAMA_INPUTS_DOCSTRING` from transformers' Llama module, which transformers 5
no longer has: with the versions this project pins, the remote code cannot even be imported.
`reward_model.architecture: armorm` loads the same checkpoint into this class instead. The
parameter names and the computation follow the model's published modeling code:

    h        = LlamaModel(input_ids)                      hidden states [batch, seq, hidden]
    rewards  = regression_layer(h[:, last token])         19 objectives (no bias)
    e        = h[:, gating position]                      the <|eot_id|> that closes the prompt,
                                                          i.e. the LAST occurrence of
                                                          "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n"
    gates    = softmax(MLP(e) / temperature) * logit_scale   MLP: n_hidden ReLU layers
    score    = sum(gates * (rewards @ reward_transform_matrix))

Config fields read from the checkpoint: num_objectives (19), gating_temperature (10),
gating_hidden_dim (1024), gating_n_hidden (3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput

# ArmoRM's gating anchor, as text; tokenized with the model's tokenizer.
ARMORM_GATING_PATTERN = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"


class GatingNetwork(nn.Module):
    """ReLU MLP -> softmax(x / temperature) * logit_scale (names match the checkpoint)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        temperature: float,
        hidden_dim: int,
        n_hidden: int,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1))
        layers = []
        for _ in range(n_hidden):
            layers.append(nn.Linear(in_features, hidden_dim))
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, out_features, bias=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = torch.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return torch.softmax(x / self.temperature, dim=1) * self.logit_scale[0]


@dataclass
class ArmoRMOutput(ModelOutput):
    score: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
    gating_output: torch.Tensor | None = None


class ArmoRMForScoring(LlamaPreTrainedModel):
    """LlamaModel + ArmoRM's regression head and gating network (inference only)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        n = int(getattr(config, "num_objectives", 19))
        self.model = LlamaModel(config)
        self.regression_layer = nn.Linear(config.hidden_size, n, bias=False)
        self.reward_transform_matrix = nn.Parameter(torch.eye(n), requires_grad=False)
        self.gating = GatingNetwork(
            config.hidden_size,
            n,
            temperature=float(getattr(config, "gating_temperature", 10)),
            hidden_dim=int(getattr(config, "gating_hidden_dim", 1024)),
            n_hidden=int(getattr(config, "gating_n_hidden", 3)),
        )
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        gating_positions: Sequence[int] | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ArmoRMOutput:
        """Inputs must be LEFT-padded: the reward is read at the last position."""
        if gating_positions is None:
            raise ValueError("ArmoRMForScoring needs gating_positions (see find_last)")
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        gate_at = torch.as_tensor(gating_positions, device=hidden.device)
        rewards = self.regression_layer(hidden[:, -1])
        gates = self.gating(hidden[rows, gate_at])
        score = torch.sum(gates * (rewards @ self.reward_transform_matrix), dim=1)
        return ArmoRMOutput(score=score, rewards=rewards, gating_output=gates)


def find_last(ids: Sequence[int], pattern: Sequence[int]) -> int:
    """Start of the last occurrence of `pattern` in `ids` (ArmoRM's find_token_for_gating)."""
    n = len(pattern)
    for j in range(len(ids) - n, -1, -1):
        if list(ids[j : j + n]) == list(pattern):
            return j
    raise ValueError(
        "ArmoRM gating pattern not found in the rendered conversation "
        "(wrong chat template, or the prompt was cut by reward_model.max_length)"
    )
