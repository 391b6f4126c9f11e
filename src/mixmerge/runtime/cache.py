"""The generation cache: every reply of an evaluated model, stored as soon as it is generated.

A rerun after a crash, or the evaluation of a second model with byte-identical weights, generates
only what is missing. An entry is keyed by exactly what determines the reply:

    sha256 of [model digest, backend, full prompt text, decoding settings]

- the model digest is the content hash of the weights (`mixmerge.model_hash`), so two merges that
  came out identical share every entry, whatever their directories are called;
- the prompt is the full text the model continues (chat template applied);
- decoding holds what changes the reply: max_new_tokens, temperature, dtype, device type, stop
  strings, and, when sampling, top_p, top_k and the seed. Sampled replies are reproducible per item
  (`generation.item_seed`), so a sampled entry is as reusable as a greedy one.

Layout, under `evaluate.cache_dir` (default `results/<run>/cache/evaluate`):

    generations/<model digest>/<host>-<pid>-<start>.jsonl   one file per writing process
    lm_eval/<model digest>-<backend>-<dtype>-<device>_rank0.db   lm-eval's own request cache
    judge/                                                  judge replies (evaluate.judge.cache_dir)

Each process appends to a file of its own, one write per line, so jobs evaluating models with the
same digest at once never interleave; a reader loads every file of its digest. A line torn by a
killed writer is skipped (and its item generated again), never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixmerge.io import read_jsonl_lenient
from mixmerge.model_hash import model_digest

log = logging.getLogger(__name__)

# (indices of the prompts to generate, save) -> None; `save(indices, replies)` stores a finished
# batch, so that a killed run keeps every batch it completed.
Generator = Callable[[list[int], Callable[[Sequence[int], Sequence[str]], None]], None]


def default_cache_dir(cfg: Mapping[str, Any]) -> Path | None:
    """evaluate.cache_dir, else results/<run>/cache/evaluate (beside the run's other outputs);
    None, i.e. replies kept in memory only, for a config that names neither (library use)."""
    configured = (cfg.get("evaluate") or {}).get("cache_dir")
    if configured:
        return Path(configured)
    return Path("results") / str(cfg["run"]) / "cache" / "evaluate" if cfg.get("run") else None


@dataclass
class Tally:
    """Replies of one benchmark: how many were generated now, how many came from the cache."""

    generated: int = 0
    cached: int = 0


class GenerationCache:
    """The cached replies of one model (by content digest); see the module docstring."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        root: str | Path | None = None,
        digest: str | None = None,
    ) -> None:
        """`root` None keeps the replies in memory only, for this one model (tests, callers
        outside evaluation): nothing names the model then, so never share such a cache.
        `digest` names a model whose weights are not on disk (the search's in-memory merges)."""
        # absolute: lm-eval resolves its cache path inside its own working directory
        self.root = None if root is None else Path(root).resolve()
        if root is not None and digest is None:
            digest = model_digest(model_dir)
        self.dir = None if root is None else Path(root) / "generations" / str(digest)
        self.digest = "" if self.dir is None else self.dir.name
        self.tally = Tally()
        self._data: dict[str, str] = {}
        if self.dir is not None and self.dir.is_dir():
            for path in sorted(self.dir.glob("*.jsonl")):
                for record in read_jsonl_lenient(path):
                    if isinstance(record.get("key"), str) and isinstance(record.get("reply"), str):
                        self._data[record["key"]] = record["reply"]
        stamp = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self._own = None if self.dir is None else self.dir / f"{stamp}.jsonl"

    def __len__(self) -> int:
        return len(self._data)

    def key(self, backend: str, prompt: str, decoding: Mapping[str, Any]) -> str:
        payload = json.dumps(
            [self.digest, backend, prompt, dict(decoding)], ensure_ascii=False, sort_keys=True
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def generate(
        self,
        backend: str,
        prompts: Sequence[str],
        decodings: Sequence[Mapping[str, Any]],
        generate: Generator,
    ) -> list[str]:
        """The reply to every prompt, in order: cached ones read, the rest handed to `generate`
        (first occurrence of each key only) and stored batch by batch as they finish."""
        if len(prompts) != len(decodings):
            raise ValueError(f"{len(prompts)} prompts but {len(decodings)} decoding settings")
        keys = [self.key(backend, p, d) for p, d in zip(prompts, decodings, strict=True)]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in self._data:
                first.setdefault(key, i)
        todo = sorted(first.values())
        self.tally.cached += len(keys) - len(todo)
        if todo:
            log.info("%d of %d replies cached, generating %d", len(keys) - len(todo), len(keys), len(todo))

            def save(indices: Sequence[int], replies: Sequence[str]) -> None:
                if len(indices) != len(replies):
                    raise ValueError(f"{len(indices)} prompts but {len(replies)} replies")
                self._store({keys[i]: reply for i, reply in zip(indices, replies, strict=True)})

            generate(todo, save)
            lost = [i for i in todo if keys[i] not in self._data]
            if lost:
                raise RuntimeError(f"the generator returned no reply for {len(lost)} prompts")
            self.tally.generated += len(todo)
        return [self._data[key] for key in keys]

    def lm_eval_cache(self, backend: str, dtype: str, device: str) -> str | None:
        """The `use_cache` path prefix of lm-eval's request cache for this model and settings
        (lm-eval keys entries by request only, so the model's identity goes into the name);
        None when the replies are kept in memory only."""
        if self.root is None:
            return None
        device_type = str(device).split(":")[0]
        return str(self.root / "lm_eval" / f"{self.digest}-{backend}-{dtype}-{device_type}")

    def _store(self, replies: Mapping[str, str]) -> None:
        self._data.update(replies)
        if self._own is None:
            return
        self._own.parent.mkdir(parents=True, exist_ok=True)
        with open(self._own, "a", encoding="utf-8") as handle:
            for key, reply in replies.items():
                # one write per line: a kill loses at most the line being written
                handle.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")
