"""Data-mixture baselines: one mixed preference set from all datasets, DPO-trained like a group.

    settings = MixSettings.from_config(config)
    stats = build_mix("heuristic", settings, pair_files, config["groups"], out, ratio=0.1)

Strategies (see each module's docstring for the exact rule):
    heuristic  (honesty + harmlessness) : helpfulness data at a fixed ratio     mix/heuristic.py
    armorm     reward-model relabelling / on-policy pairs (SimPO recipe)         mix/armorm.py
    hummer     LLM-judged alignment dimensions, ADC kept under a threshold       mix/hummer.py

Every strategy writes the mixed pairs (pair format: prompt, chosen, rejected, source,
dimension) to `out` and `<out stem>.mix.json`: strategy, parameters, seed, composition (pairs
per dataset and per group) and the strategy's own stats.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.mix.common import load_pool, mix_stats_path, subsample_pool, write_mix
from mixmerge.mix.heuristic import heuristic_variants, ratio_label
from mixmerge.mix.settings import STRATEGIES, MixContext, MixSettings

__all__ = [
    "STRATEGIES",
    "MixContext",
    "MixSettings",
    "build_mix",
    "heuristic_variants",
    "mix_stats_path",
    "ratio_label",
]

log = logging.getLogger(__name__)


def build_mix(
    strategy: str,
    settings: MixSettings,
    pair_files: Mapping[str, str | Path],
    groups: Mapping[str, Sequence[str]],
    out: str | Path,
    *,
    ratio: float | None = None,
    context: MixContext | None = None,
) -> dict[str, Any]:
    """Build one mixture from the datasets' pair files; write it and its stats; return the stats.

    settings: config `mixtures` (and the seed). pair_files: dataset -> pairs JSONL.
    groups: config `groups`. ratio: the heuristic's ratio (one of mixtures.heuristic.ratios).
    context: the job's caches, device and shared models (MixContext; all optional).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mix strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    context = context or MixContext()
    out = Path(out)
    seed = settings.seed
    cache_dir = Path(context.cache_dir or settings.cache_dir or out.parent / "cache")
    pool = load_pool(pair_files, groups)
    pool_pairs = len(pool)

    if strategy == "heuristic":
        from mixmerge.mix.heuristic import heuristic_mix

        if ratio is None:
            raise ValueError("mix strategy heuristic needs a ratio (--ratio)")
        params = {**_parameters(settings.heuristic), "ratio": float(ratio)}
        pairs, stats = heuristic_mix(pool, settings.heuristic, list(groups), float(ratio), seed)
    elif strategy == "armorm":
        from mixmerge.mix.armorm import armorm_mix

        if settings.armorm is None:
            raise ValueError("mix strategy armorm needs mixtures.armorm (its reward_model)")
        params = _parameters(settings.armorm)
        pool = _capped(pool, settings.armorm.pool_size, seed, strategy)
        pairs, stats = armorm_mix(
            pool,
            settings.armorm,
            seed=seed,
            cache_dir=cache_dir,
            device=context.device,
            policy=context.policy,
            gen_cfg=context.generation,
        )
    else:
        from mixmerge.judge.settings import JudgeSettings
        from mixmerge.judge.settings import backend as judge_backend
        from mixmerge.mix.hummer import hummer_mix

        hummer = settings.hummer
        judge_cfg = dict(hummer.judge or context.judge or {})
        if not judge_cfg:
            raise ValueError(
                "mix strategy hummer needs a judge (mixtures.hummer.judge or evaluate.judge)"
            )
        # a local judge model runs on the mixing job's device; an API judge has none
        if context.device and judge_backend(JudgeSettings.from_config(judge_cfg).backend).loads_model:
            judge_cfg.setdefault("device", context.device)
        params = _parameters(hummer, leave_out=("judge",))  # the judge is in the stats
        pool = _capped(pool, hummer.pool_size, seed, strategy)
        pairs, stats = hummer_mix(pool, hummer, judge_cfg, seed=seed, cache_dir=cache_dir)

    record = {
        "strategy": strategy,
        "seed": seed,
        "parameters": params,
        "pool": {"pairs": pool_pairs, "candidates": len(pool), "datasets": list(pair_files)},
        "stats": stats,
    }
    record = write_mix(out, pairs, record)
    log.info("%s mix: %d pairs written to %s", strategy, len(pairs), out)
    return record


def _parameters(block: Any, leave_out: Sequence[str] = ()) -> dict[str, Any]:
    """A strategy's settings as its `.mix.json` records them (JSON types: lists, not tuples)."""
    values = json.loads(json.dumps(dataclasses.asdict(block)))
    return {k: v for k, v in values.items() if k not in leave_out}


def _capped(pool: list[dict[str, Any]], size: int | None, seed: int, strategy: str) -> list:
    """Scoring / labelling every pair of every dataset can be costly: `pool_size` caps them."""
    return subsample_pool(pool, size, seed, strategy) if size else pool
