"""Judge backend that scores each candidate verdict with a local HF causal LM (no API, no parsing).

The judge prompt is rendered with the judge model's chat template (generation prompt added), and
every candidate continuation "[[<label>]]" is scored by its summed token log-likelihood; the best
one is the verdict. The answer is therefore always a valid label: this is what the offline tiny
profile uses (the tiny model judges itself), and a cheap local stand-in for an API judge.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixmerge.judge.base import Judge, JudgePrompt, Verdict

log = logging.getLogger(__name__)

VERDICT_TEMPLATE = "[[{label}]]"


class LocalJudge(Judge):
    backend = "local"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = "auto",
        batch_size: int = 8,
        max_length: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mixmerge.evaluate.generation import resolve_dtype

        if not model:
            raise ValueError("judge backend 'local' needs evaluate.judge.model (a model path)")
        if batch_size < 1:
            raise ValueError("judge batch_size must be >= 1")
        self.model = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(batch_size)
        self._tok = AutoTokenizer.from_pretrained(self.model)
        if not self._tok.chat_template:
            raise ValueError(f"{self.model}: judge tokenizer has no chat template")
        self._lm = AutoModelForCausalLM.from_pretrained(self.model, dtype=resolve_dtype(dtype))
        self._lm.to(self.device).eval()
        limits = [
            getattr(self._lm.config, "max_position_embeddings", None),
            self._tok.model_max_length if self._tok.model_max_length < 1_000_000 else None,
            max_length,
        ]
        self.max_length = min(x for x in limits if x) if any(limits) else 4096

    def _render(self, item: JudgePrompt) -> str:
        messages = [{"role": "user", "content": item.user}]
        if item.system:
            messages.insert(0, {"role": "system", "content": item.system})
        try:
            return self._tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # templates without a system role raise TemplateError
            if not item.system:
                raise
            merged = [{"role": "user", "content": f"{item.system}\n\n{item.user}"}]
            return self._tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def _loglikelihoods(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Summed log p(continuation | context) for each (context ids, continuation ids) pair."""
        import torch

        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        scores: list[float] = [0.0] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seqs = []
            for i in idx:
                ctx, cont = pairs[i]
                # Over-long prompts lose their beginning; the verdict slot must stay intact.
                keep = max(self.max_length - len(cont), 1)
                seqs.append((ctx[-keep:], cont))
            width = max(len(c) + len(k) for c, k in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, (ctx, cont) in enumerate(seqs):  # right padding: positions stay 0..n-1
                full = ctx + cont
                ids[row, : len(full)] = torch.tensor(full)
                mask[row, : len(full)] = 1
            with torch.inference_mode():
                logits = self._lm(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1).cpu()
            for row, (ctx, cont) in enumerate(seqs):
                # token t is predicted by the logits at position t - 1
                positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
                targets = torch.tensor(cont)
                scores[idx[row]] = float(logprobs[row, positions, targets].sum())
        return scores

    def classify(self, items: Sequence[JudgePrompt], labels: Sequence[str]) -> list[Verdict]:
        from tqdm.auto import tqdm

        if not labels:
            raise ValueError("classify needs at least one label")
        labels = list(labels)
        conts = [
            self._tok(VERDICT_TEMPLATE.format(label=label), add_special_tokens=False)["input_ids"]
            for label in labels
        ]
        verdicts: list[Verdict] = []
        chunk = max(self.batch_size, 1)
        for start in tqdm(range(0, len(items), chunk), desc="judge (local)", unit="batch"):
            part = list(items[start : start + chunk])
            # Context and continuation are tokenized apart (as lm-eval does), so the candidate
            # tokens are identical for every item.
            ctxs: list[Any] = [
                self._tok(self._render(it), add_special_tokens=False)["input_ids"] for it in part
            ]
            pairs = [(ctx, cont) for ctx in ctxs for cont in conts]
            flat = self._loglikelihoods(pairs)
            for k in range(len(part)):
                scores = dict(
                    zip(labels, flat[k * len(labels) : (k + 1) * len(labels)], strict=True)
                )
                best = max(labels, key=lambda lab: scores[lab])
                verdicts.append(
                    Verdict(
                        label=best,
                        raw=VERDICT_TEMPLATE.format(label=best),
                        parsed=True,
                        scores=scores,
                    )
                )
        return verdicts

    def close(self) -> None:
        import torch

        self._lm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
