"""The tiny offline reward model: a random LlamaForSequenceClassification shaped like ArmoRM's head.

It stands in for RLHFlow/ArmoRM-Llama3-8B-v0.1 in the tiny profile and goes through the same
scoring code (`mixmerge.mix.reward`). It has 19 outputs named after ArmoRM's 19 objectives and
the tokenizer + chat template of the tiny base model. It has no `score` output, so with
`objective: null` the score is the mean of the 19 outputs (documented in mixmerge.mix.reward).
The weights are random: scores are arbitrary but deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

from mixmerge.io import atomic_dir

# ArmoRM-Llama3-8B-v0.1's objectives, in its output order (model card): index 0 is HelpSteer
# helpfulness, 8 UltraFeedback honesty, 10 BeaverTails is_safe.
ARMORM_OBJECTIVES = (
    "helpsteer-helpfulness",
    "helpsteer-correctness",
    "helpsteer-coherence",
    "helpsteer-complexity",
    "helpsteer-verbosity",
    "ultrafeedback-overall_score",
    "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness",
    "ultrafeedback-honesty",
    "ultrafeedback-helpfulness",
    "beavertails-is_safe",
    "prometheus-score",
    "argilla-overall_quality",
    "argilla-judge_lm",
    "code-complexity",
    "code-style",
    "code-explanation",
    "code-instruction-following",
    "code-readability",
)


def build_tiny_reward_model(
    out_dir: str | Path,
    tokenizer_source_dir: str | Path,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
) -> None:
    """Write a random-init LlamaForSequenceClassification (19 labels) + the source tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from mixmerge.tiny.model import tiny_llama_config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source_dir)
    if not tokenizer.chat_template:
        raise ValueError(f"{tokenizer_source_dir}: tokenizer has no chat template")
    if tokenizer.pad_token_id is None:
        raise ValueError(f"{tokenizer_source_dir}: tokenizer has no pad token (needed to batch)")
    # the scorer pads with the tokenizer's pad id and batches
    config = tiny_llama_config(
        tokenizer,
        hidden_size,
        layers,
        num_labels=len(ARMORM_OBJECTIVES),
        id2label=dict(enumerate(ARMORM_OBJECTIVES)),
        label2id={name: i for i, name in enumerate(ARMORM_OBJECTIVES)},
    )
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
