"""Helpers shared by the mixture strategies: the pair pool, composition, allocation, caches."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.io import read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

Pair = dict[str, Any]
Messages = list[dict[str, str]]

PAIR_KEYS = ("prompt", "chosen", "rejected", "source", "dimension")


def load_pool(
    pair_files: Mapping[str, str | Path], groups: Mapping[str, Sequence[str]]
) -> list[Pair]:
    """All pairs of all datasets, in `pair_files` order; `dimension` is the dataset's config group."""
    group_of = {name: group for group, names in groups.items() for name in names}
    pool: list[Pair] = []
    for dataset, path in pair_files.items():
        if dataset not in group_of:
            raise ValueError(f"dataset {dataset!r} has a pair file but is in no group")
        if not Path(path).is_file():
            raise FileNotFoundError(f"pair file not found: {path}")
        for lineno, row in enumerate(read_jsonl(path), 1):
            missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
            if missing:
                raise ValueError(f"{path}:{lineno}: pair lacks {', '.join(missing)}")
            pool.append(
                {
                    "prompt": row["prompt"],
                    "chosen": row["chosen"],
                    "rejected": row["rejected"],
                    "source": row.get("source") or dataset,
                    "dimension": group_of[dataset],
                }
            )
    if not pool:
        raise ValueError("no pairs to mix (all pair files are empty)")
    return pool


def composition(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Counts per dataset and per group (keys sorted, so the file diffs cleanly)."""
    by_dataset: dict[str, int] = {}
    by_group: dict[str, int] = {}
    for p in pairs:
        by_dataset[p["source"]] = by_dataset.get(p["source"], 0) + 1
        by_group[p["dimension"]] = by_group.get(p["dimension"], 0) + 1
    return {
        "pairs": len(pairs),
        "by_dataset": dict(sorted(by_dataset.items())),
        "by_group": dict(sorted(by_group.items())),
    }


def round_half_up(x: float) -> int:
    # Python's round() is banker's rounding; the mixes are specified with ordinary rounding.
    return math.floor(x + 0.5)


def allocate(total: int, sizes: Mapping[str, int]) -> dict[str, int]:
    """Split `total` over the keys proportionally to `sizes` (largest remainder, exact sum).

    No key gets more than its size when total <= sum(sizes). Ties go to the earlier key.
    """
    available = sum(sizes.values())
    if total > available:
        raise ValueError(f"cannot take {total} items from {available}")
    if available == 0:
        return {k: 0 for k in sizes}
    shares = {k: total * n / available for k, n in sizes.items()}
    counts = {k: math.floor(s) for k, s in shares.items()}
    order = sorted(sizes, key=lambda k: -(shares[k] - counts[k]))  # stable: ties keep key order
    for k in order[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def seeded_rng(seed: int, *parts: object) -> random.Random:
    """An RNG per (seed, purpose): sampling one dataset never shifts another's sample."""
    return random.Random("/".join([str(seed), *map(str, parts)]))


def sample_indices(n_available: int, k: int, rng: random.Random) -> list[int]:
    """k distinct indices in increasing order (the sample keeps the file order)."""
    return sorted(rng.sample(range(n_available), k))


def subsample_pool(pool: Sequence[Pair], size: int, seed: int, purpose: str) -> list[Pair]:
    """At most `size` pairs, each dataset in proportion to its share (pool order kept).

    Caps what a costly strategy scores or labels (config `pool_size`).
    """
    if size < 1:
        raise ValueError(f"pool_size must be >= 1, got {size}")
    if size >= len(pool):
        return list(pool)
    by_dataset: dict[str, list[int]] = {}
    for i, p in enumerate(pool):
        by_dataset.setdefault(p["source"], []).append(i)
    counts = allocate(size, {d: len(ix) for d, ix in by_dataset.items()})
    keep: list[int] = []
    for dataset, ix in by_dataset.items():
        rng = seeded_rng(seed, purpose, "pool", dataset)
        keep += [ix[j] for j in sample_indices(len(ix), counts[dataset], rng)]
    return [pool[i] for i in sorted(keep)]


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")
    ).hexdigest()


def prompt_key(prompt: Messages) -> str:
    return sha256_json([[m["role"], m["content"]] for m in prompt])


def model_identity(path: str | Path, revision: str | None = None) -> str:
    """What identifies a model's outputs, for cache keys.

    A hub id is identified by id + revision (pin the revision for a stable cache). A local
    directory by its config and the name, size and mtime of its weight files, so rebuilding
    the model invalidates cached scores without hashing gigabytes of weights.
    """
    local = Path(path)
    if not local.is_dir():
        return f"hub:{path}@{revision or 'main'}"
    parts: list[Any] = []
    config = local / "config.json"
    if config.is_file():
        parts.append(hashlib.sha256(config.read_bytes()).hexdigest())
    for weight in sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin")):
        stat = weight.stat()
        parts.append([weight.name, stat.st_size, stat.st_mtime_ns])
    return f"dir:{local.resolve()}:{sha256_json(parts)[:16]}"


def slug(text: str) -> str:
    """A file-name-safe rendering of a model id or path, for cache file names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")[-80:] or "model"


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """min / mean / median / max of a list (None when empty)."""
    if not values:
        return {"min": None, "mean": None, "median": None, "max": None}
    return {
        "min": float(min(values)),
        "mean": float(statistics.fmean(values)),
        "median": float(statistics.median(values)),
        "max": float(max(values)),
    }


def mix_stats_path(out: str | Path) -> Path:
    """`<out stem>.mix.json` beside the pairs file."""
    out = Path(out)
    return out.parent / f"{out.stem}.mix.json"


def write_mix(out: str | Path, pairs: Sequence[Pair], stats: dict[str, Any]) -> dict[str, Any]:
    """Write the mixed pairs (pair format only) and `<out stem>.mix.json`; return the stats."""
    if not pairs:
        raise ValueError(f"{stats.get('strategy', 'mix')}: the mixture is empty")
    stats = {**stats, "composition": composition(pairs)}
    write_jsonl(out, ({k: p[k] for k in PAIR_KEYS} for p in pairs))
    write_json(mix_stats_path(out), stats)
    return stats
