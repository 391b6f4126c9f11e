"""Reward-model scoring of (conversation, response) items, batched and cached on disk.

One adapter serves both kinds of reward model:
- ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1): its output carries `score` (the gated scalar
  preference score) and `rewards` (19 objectives: 0 helpsteer-helpfulness, 8
  ultrafeedback-honesty, 10 beavertails-is_safe, ...). Score = `out.score`. Loaded either with
  the model's own hub code (`trust_remote_code: true` + a pinned `revision`; that code targets
  transformers 4.x and fails to import under transformers 5) or, recommended, with
  `architecture: armorm` (mixmerge's implementation of the same computation, no hub code).
- a plain `AutoModelForSequenceClassification` (the tiny profile's reward model): its output is
  `logits` [batch, num_labels]. Score = logits[:, objective] when `objective` is an int, else the
  mean over the labels (a single-label model: that logit).
`objective` set to an int also picks that entry of `out.rewards` for ArmoRM.

The settings (config `mixtures.armorm.reward_model`, their defaults and meaning) are
`mixmerge.mix.settings.RewardModelSettings`. `architecture: null` loads the model with
AutoModelForSequenceClassification (+ the model's own code when trust_remote_code);
`architecture: armorm` uses mixmerge's implementation of ArmoRM (mix/armorm_model.py; no hub
code runs). `max_length` cuts the start: the reply's end is what a reward model reads.

The cache holds one JSONL line per scored item, keyed by sha256 over (model identity, objective,
max_length, conversation, response); see `mixmerge.mix.common.model_identity`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixmerge.chat import render_chat
from mixmerge.judge.cache import JsonlCache
from mixmerge.mix.common import Messages, model_identity, sha256_json, slug
from mixmerge.mix.settings import RewardModelSettings

log = logging.getLogger(__name__)

ScoreItem = tuple[Messages, str]  # (conversation before the reply, reply text)


class HFRewardModel:
    """A sequence-classification reward model loaded with transformers."""

    def __init__(self, rm: RewardModelSettings, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from mixmerge.hub import model_source
        from mixmerge.runtime.generation import resolve_dtype

        if not rm.path:
            raise ValueError("mixtures.armorm.reward_model.path is required")
        path, revision = model_source(rm.path, rm.revision)
        kwargs = {"revision": revision, "trust_remote_code": rm.trust_remote_code}
        self.device = device or rm.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.objective = rm.objective
        self.max_length = rm.max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        if not self.tokenizer.chat_template:
            raise ValueError(f"{path}: reward-model tokenizer has no chat template")
        self.architecture = rm.architecture
        dtype = resolve_dtype(rm.dtype)
        self.gating_pattern: list[int] | None = None
        if self.architecture == "armorm":
            from mixmerge.mix.armorm_model import ARMORM_GATING_PATTERN, ArmoRMForScoring

            # mixmerge's own implementation of ArmoRM: the hub's modeling code is never run
            self.model, info = ArmoRMForScoring.from_pretrained(
                path, dtype=dtype, revision=revision, output_loading_info=True
            )
            if info.get("missing_keys"):
                raise ValueError(
                    f"{path}: not an ArmoRM checkpoint (missing {sorted(info['missing_keys'])[:3]})"
                )
            pattern = rm.gating_pattern or ARMORM_GATING_PATTERN
            self.gating_pattern = self.tokenizer(pattern, add_special_tokens=False)["input_ids"]
        elif self.architecture is None:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=dtype, **kwargs
            )
        else:
            raise ValueError(
                f"reward_model.architecture must be null or 'armorm', got {self.architecture!r}"
            )
        self.model.to(self.device).eval()
        # Batches are LEFT-padded with the model's own pad id, so the last position is the real
        # last token whichever rule the head uses to find it (transformers: rightmost non-pad;
        # ArmoRM's code: first pad - 1, wrapping to the end). A model without a usable pad id
        # (none set, or one outside the embedding table) is run one sequence at a time.
        pad_id = getattr(self.model.config, "pad_token_id", None)
        vocab = self.model.get_input_embeddings().num_embeddings
        if self.architecture == "armorm" and (pad_id is None or not 0 <= pad_id < vocab):
            # ours reads the last position directly: any valid id can fill the masked pads
            pad_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id or 0
        self.pad_id = pad_id if pad_id is not None and 0 <= pad_id < vocab else None
        self.batch_size = rm.batch_size if self.pad_id is not None else 1

    def _render(self, messages: Messages, response: str) -> list[int]:
        conv = [*messages, {"role": "assistant", "content": response}]
        # a system turn is folded into the first user turn where the template has no system role
        text = render_chat(self.tokenizer, conv)
        # The template already holds BOS and the turn markers.
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.max_length :]

    def _combine(self, out: Any) -> tuple[Any, Any]:
        """(score [batch], per-objective rewards [batch, n]) from the model's output."""
        rewards = getattr(out, "rewards", None)
        if rewards is None:
            rewards = out.logits
        rewards = rewards.float().reshape(rewards.shape[0], -1)
        if isinstance(self.objective, int) and not isinstance(self.objective, bool):
            if not 0 <= self.objective < rewards.shape[1]:
                raise ValueError(
                    f"reward_model.objective {self.objective} out of range "
                    f"(the model has {rewards.shape[1]} objectives)"
                )
            return rewards[:, self.objective], rewards
        if self.objective not in (None, "mean"):
            raise ValueError(
                f"reward_model.objective must be null, 'mean' or an int, got {self.objective!r}"
            )
        score = getattr(out, "score", None)
        if self.objective is None and score is not None:
            return score.float().reshape(-1), rewards
        return rewards.mean(dim=1), rewards

    def score_batch(self, items: Sequence[ScoreItem]) -> list[tuple[float, list[float]]]:
        """Score up to batch_size items in one forward pass (left padding)."""
        import torch

        seqs = [self._render(m, r) for m, r in items]
        width = max(len(s) for s in seqs)
        pad = self.pad_id if self.pad_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        extra = {}
        if self.gating_pattern is not None:
            from mixmerge.mix.armorm_model import find_last

            extra["gating_positions"] = [
                width - len(seq) + find_last(seq, self.gating_pattern) for seq in seqs
            ]
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **extra
            )
        score, rewards = self._combine(out)
        return [
            (float(s), [float(x) for x in r])
            for s, r in zip(score.cpu().tolist(), rewards.cpu().tolist(), strict=True)
        ]

    def close(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class RewardScorer:
    """Scores items through the disk cache; the model is loaded only when something is missing.

    Counters (for logs and tests): `hits` items served from the cache, `computed` items scored,
    `model_calls` forward passes run.
    """

    def __init__(
        self,
        rm: RewardModelSettings,
        cache_dir: str | Path,
        device: str | None = None,
    ) -> None:
        self.rm = rm
        if not rm.path:
            raise ValueError("mixtures.armorm.reward_model.path is required")
        path = rm.path
        if rm.trust_remote_code and not Path(path).is_dir() and not rm.revision:
            raise ValueError(
                f"reward model {path}: trust_remote_code runs code from the hub; "
                "pin mixtures.armorm.reward_model.revision to a commit hash"
            )
        self.device = device
        self.identity = [
            model_identity(path, rm.revision),
            rm.architecture,
            rm.objective,
            rm.max_length,
        ]
        self.cache = JsonlCache(Path(cache_dir) / "reward" / f"{slug(path)}.jsonl")
        self._model: HFRewardModel | None = None
        self.hits = 0
        self.computed = 0
        self.model_calls = 0

    def key(self, item: ScoreItem) -> str:
        messages, response = item
        return sha256_json([self.identity, [[m["role"], m["content"]] for m in messages], response])

    def score(self, items: Sequence[ScoreItem]) -> list[dict[str, Any]]:
        """One record {"score": float, "rewards": [floats]} per item, in order."""
        from tqdm.auto import tqdm

        keys = [self.key(it) for it in items]
        todo, hits = self.cache.missing(zip(keys, items, strict=True))
        self.hits += hits
        if todo:
            model = self._load()
            pending = list(todo.items())
            # longest first: batches of similar length waste less padding
            pending.sort(key=lambda kv: -len(kv[1][1]) - sum(len(m["content"]) for m in kv[1][0]))
            step = model.batch_size
            for start in tqdm(range(0, len(pending), step), desc="reward model", unit="batch"):
                chunk = pending[start : start + step]
                scored = model.score_batch([item for _, item in chunk])
                self.model_calls += 1
                self.computed += len(chunk)
                # written after every batch: a killed run keeps what it has scored
                self.cache.put_many(
                    {
                        k: {"score": s, "rewards": r}
                        for (k, _), (s, r) in zip(chunk, scored, strict=True)
                    }
                )
        return [self.cache.get(k) for k in keys]  # type: ignore[misc]

    def _load(self) -> HFRewardModel:
        if self._model is None:
            log.info("loading reward model %s", self.rm.path)
            self._model = HFRewardModel(self.rm, self.device)
        return self._model

    def stats(self) -> dict[str, Any]:
        return {
            "reward_model": self.rm.path,
            "revision": self.rm.revision,
            "objective": self.rm.objective,
            "cache_hits": self.hits,
            "scored": self.computed,
            "model_calls": self.model_calls,
            "cache_file": str(self.cache.path),
        }

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
