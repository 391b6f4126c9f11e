"""Judge backend on a local transformers causal LM (e.g. MD-Judge, or the tiny model itself).

mode "generate": the judge writes its verdict text (greedy unless `temperature` > 0), which is
    parsed exactly like an API judge's reply (MD-Judge is used this way).
mode "likelihood": every candidate verdict text of the benchmark (its `verdict_format`, e.g.
    "[[direct_answer]]", "[[7]]", "[RESULT]: unsafe") is scored by its summed token log-likelihood
    after the judge prompt, and the best one is the verdict. The answer is therefore always valid:
    the offline tiny profile uses this, so the tiny table is complete.

The judge prompt is rendered with the judge model's chat template (generation prompt added), or
fed as is when the prompt file says `raw: true` (MD-Judge v0.1 carries its own [INST] tags).
The model is loaded through the per-process cache of `mixmerge.runtime.generation`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixmerge.chat import render_chat
from mixmerge.hub import model_identity
from mixmerge.judge.base import Judge, JudgePrompt, Verdict, VerdictParser
from mixmerge.judge.cache import JsonlCache, cache_key
from mixmerge.judge.settings import JudgeSettings, register_backend
from mixmerge.model_hash import model_digest

log = logging.getLogger(__name__)

MODES = ("likelihood", "generate")
CACHE_FILE = "hf_judge.jsonl"


class HFJudge(Judge):
    backend = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        mode: str = "generate",
        device: str | None = None,
        dtype: str | None = "auto",
        batch_size: int = 8,
        max_length: int | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        revision: str | None = None,
        trust_remote_code: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        import torch

        from mixmerge.runtime.generation import load_hf_model

        if not model:
            raise ValueError("judge backend 'hf' needs evaluate.judge.model (a path or hub id)")
        if mode not in MODES:
            raise ValueError(f"unknown judge mode {mode!r} (known: {', '.join(MODES)})")
        if batch_size < 1:
            raise ValueError("judge batch_size must be >= 1")
        self.model = str(model)
        # what names the verdicts in the cache: a hub id @ its commit; a local directory by its
        # weights' content digest too, so a rebuilt judge never reuses an old one's verdicts
        self.identity = model_identity(model, revision)
        if Path(self.model).is_dir():
            self.identity += f"@{model_digest(self.model)}"
        self.mode = mode
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens) if max_tokens else 512
        self.temperature = float(temperature)
        self._lm, self._tok = load_hf_model(
            self.model,
            self.device,
            dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
        )
        limits = [
            getattr(self._lm.config, "max_position_embeddings", None),
            self._tok.model_max_length if self._tok.model_max_length < 1_000_000 else None,
            max_length,
        ]
        self.max_length = min(x for x in limits if x) if any(limits) else 4096
        # transformers renamed forward(past_key_values=) to forward(cache=) during 5.x.
        params = inspect.signature(self._lm.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # Verdicts cost real time (MD-Judge on thousands of items): cache them like API replies,
        # so that a rerun, or a second model with the same answers, never computes one twice.
        self._cache = JsonlCache(Path(cache_dir) / CACHE_FILE) if cache_dir else None
        self._usage = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "judge_mode": self.mode}

    def usage(self) -> dict[str, Any]:
        return {**self._usage, "cost_usd": None}

    def _render(self, item: JudgePrompt) -> str:
        if item.raw:
            return item.user
        if not self._tok.chat_template:
            raise ValueError(f"{self.model}: judge tokenizer has no chat template")
        messages = [{"role": "user", "content": item.user}]
        if item.system:
            messages.insert(0, {"role": "system", "content": item.system})
        # folded into the user turn where the template has no system role (mixmerge.chat)
        return render_chat(self._tok, messages, add_generation_prompt=True)

    def _encode(self, item: JudgePrompt) -> list[int]:
        # Raw prompts get the tokenizer's BOS (as MD-Judge v0.1's card does); chat-rendered ones
        # already carry it in the template.
        return self._tok(self._render(item), add_special_tokens=item.raw)["input_ids"]

    def judge(self, items: Sequence[JudgePrompt], parser: VerdictParser) -> list[Verdict]:
        items = list(items)
        if self.mode == "likelihood":
            return self._judge_likelihood(items, parser)
        return self._judge_generate(items, parser)

    # -- generate ---------------------------------------------------------------------------
    def _key(self, item: JudgePrompt) -> str:
        decoding = {
            "mode": "generate",
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        return cache_key(self.identity, self._render(item), decoding)

    def _judge_generate(self, items: list[JudgePrompt], parser: VerdictParser) -> list[Verdict]:
        from mixmerge.runtime.generation import hf_generate

        raws: list[str | None] = [None] * len(items)
        keys = [self._key(it) for it in items] if self._cache is not None else []
        if self._cache is not None:
            for i, key in enumerate(keys):
                if (hit := self._cache.get(key)) is not None:
                    raws[i] = str(hit.get("raw", ""))
        todo = [i for i, raw in enumerate(raws) if raw is None]
        self._usage["cached"] += len(items) - len(todo)
        gen_cfg = {
            "max_new_tokens": self.max_tokens,
            "batch_size": self.batch_size,
            "temperature": self.temperature,
        }
        # Chunks, so that a killed run keeps every verdict cached before it.
        chunk = self.batch_size * 4
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            texts = [self._render(items[i]) for i in part]
            replies: list[str] = [""] * len(part)
            # Chat-rendered texts already hold BOS; raw ones get it from the tokenizer.
            for raw in (False, True):
                ks = [k for k, i in enumerate(part) if items[i].raw == raw]
                if not ks:
                    continue
                out = hf_generate(
                    self._lm,
                    self._tok,
                    [texts[k] for k in ks],
                    [self.temperature] * len(ks),
                    gen_cfg,
                    add_special_tokens=raw,
                    max_length=self.max_length,
                    desc=f"judge {Path(self.model).name}",
                )
                for k, reply in zip(ks, out, strict=True):
                    replies[k] = reply
            for k, i in enumerate(part):
                raws[i] = replies[k]
                self._usage["requests"] += 1
                # Token counts are re-encoded from the texts: close enough for usage statistics.
                self._usage["prompt_tokens"] += len(self._encode(items[i]))
                self._usage["completion_tokens"] += len(
                    self._tok(replies[k], add_special_tokens=False)["input_ids"]
                )
                if self._cache is not None:
                    self._cache.put(keys[i], {"model": self.model, "raw": replies[k]})
        fresh = set(todo)
        verdicts = []
        for i, raw in enumerate(raws):
            label = parser.parse(raw or "")
            attempts = 1 if i in fresh else 0
            verdicts.append(
                Verdict(label=label, raw=raw or "", parsed=label is not None, attempts=attempts)
            )
        return verdicts

    # -- likelihood -------------------------------------------------------------------------
    def _loglikelihoods(self, ctxs: list[list[int]], conts: list[list[int]]) -> list[list[float]]:
        """Summed log p(cont | ctx) for every context x every candidate continuation.

        Each batch of contexts goes through the model once (left-padded, KV cache kept); every
        candidate is then scored as a short continuation of that cache, so a 10-way MT-Bench
        rating costs one long forward pass, not ten.
        """
        import copy

        import torch

        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        device = next(self._lm.parameters()).device
        # Over-long prompts lose their beginning; the verdict slot must stay intact.
        keep = max(self.max_length - max(len(c) for c in conts), 1)
        scores: list[list[float]] = []
        for start in range(0, len(ctxs), self.batch_size):
            part = [ctx[-keep:] for ctx in ctxs[start : start + self.batch_size]]
            n, width = len(part), max(len(c) for c in part)
            ids = torch.full((n, width), pad, dtype=torch.long)
            mask = torch.zeros((n, width), dtype=torch.long)
            for row, ctx in enumerate(part):
                ids[row, width - len(ctx) :] = torch.tensor(ctx, dtype=torch.long)
                mask[row, width - len(ctx) :] = 1
            ids, mask = ids.to(device), mask.to(device)
            lengths = mask.sum(-1, keepdim=True)
            with torch.inference_mode():
                out = self._lm(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True,
                    logits_to_keep=1,  # only the next-token distribution is needed
                )
                cache = out.cache if hasattr(out, "cache") else out.past_key_values
                first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                part_scores = torch.zeros((n, len(conts)), device=device)
                for c, cont in enumerate(conts):
                    part_scores[:, c] = first[:, cont[0]]
                    if len(cont) == 1:
                        continue
                    # The rest of the candidate continues a private copy of the context cache.
                    feed = torch.tensor(cont[:-1], device=device).expand(n, -1)
                    step = self._lm(
                        input_ids=feed,
                        attention_mask=torch.cat([mask, torch.ones_like(feed)], dim=-1),
                        position_ids=lengths + torch.arange(len(cont) - 1, device=device),
                        **{self._cache_arg: copy.deepcopy(cache)},
                        use_cache=True,
                    )
                    logprobs = torch.log_softmax(step.logits.float(), dim=-1)
                    targets = torch.tensor(cont[1:], device=device).expand(n, -1)
                    part_scores[:, c] += logprobs.gather(-1, targets[..., None])[..., 0].sum(-1)
            scores += part_scores.cpu().tolist()
        return scores

    def _judge_likelihood(self, items: list[JudgePrompt], parser: VerdictParser) -> list[Verdict]:
        from tqdm.auto import tqdm

        candidates = parser.candidates()
        labels = list(candidates)
        # Context and continuation are tokenized apart (as lm-eval does), so the candidate
        # tokens are identical for every item.
        conts = [
            self._tok(candidates[lab], add_special_tokens=False)["input_ids"] for lab in labels
        ]
        decoding = {"mode": "likelihood", "candidates": candidates}
        keys = [cache_key(self.identity, self._render(it), decoding) for it in items]
        done: dict[int, Verdict] = {}
        if self._cache is not None:
            for i, key in enumerate(keys):
                if (hit := self._cache.get(key)) is not None:
                    done[i] = Verdict(
                        label=hit["label"], raw=hit["raw"], parsed=True, scores=hit["scores"]
                    )
        self._usage["cached"] += len(done)
        todo = [i for i in range(len(items)) if i not in done]
        chunk = self.batch_size
        for start in tqdm(range(0, len(todo), chunk), desc="judge (likelihood)", unit="batch"):
            part = todo[start : start + chunk]
            ctxs = [self._encode(items[i]) for i in part]
            fresh: dict[str, dict[str, Any]] = {}
            for i, ctx, row in zip(part, ctxs, self._loglikelihoods(ctxs, conts), strict=True):
                scores = dict(zip(labels, row, strict=True))
                best = max(labels, key=lambda lab: scores[lab])
                raw = candidates[best]
                if parser.parse(raw) != best:  # a prompt file whose parser can't read its format
                    raise ValueError(
                        f"verdict text {raw!r} does not parse back to {best!r}: check the prompt "
                        "file's verdict_format and parse rule"
                    )
                self._usage["requests"] += 1
                self._usage["prompt_tokens"] += len(ctx)
                done[i] = Verdict(label=best, raw=raw, parsed=True, scores=scores)
                fresh[keys[i]] = {"model": self.model, "label": best, "raw": raw, "scores": scores}
            if self._cache is not None:
                self._cache.put_many(fresh)
        return [done[i] for i in range(len(items))]


def from_settings(settings: JudgeSettings, cache_dir: str | Path | None) -> HFJudge:
    """The `hf` (and `local`) backend's factory (mixmerge/judge/settings.py)."""
    return HFJudge(
        settings.model or "",
        mode=settings.mode or "generate",
        device=settings.device,
        dtype=settings.dtype,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        revision=settings.revision,
        trust_remote_code=settings.trust_remote_code,
        cache_dir=cache_dir,
    )


register_backend("hf", from_settings, loads_model=True, doc="a local transformers model")
register_backend(
    "local",
    from_settings,
    defaults={"mode": "likelihood"},
    loads_model=True,
    doc="hf in likelihood mode (the older name)",
)
