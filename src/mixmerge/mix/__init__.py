"""Data-mixture baselines: one mixed preference set from all datasets, DPO-trained like a group.

    stats = build_mix("heuristic", config["mixtures"], pair_files, config["groups"], out,
                      seed=config["seed"], ratio=0.1)

Strategies (see each module's docstring for the exact rule):
    heuristic  (honesty + harmlessness) : helpfulness data at a fixed ratio     mix/heuristic.py
    armorm     reward-model relabelling / on-policy pairs (SimPO recipe)         mix/armorm.py
    hummer     LLM-judged alignment dimensions, ADC kept under a threshold       mix/hummer.py

Every strategy writes the mixed pairs (pair format: prompt, chosen, rejected, source,
dimension) to `out` and `<out stem>.mix.json`: strategy, parameters, seed, composition (pairs
per dataset and per group) and the strategy's own stats.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.mix.common import load_pool, mix_stats_path, subsample_pool, write_mix
from mixmerge.mix.heuristic import heuristic_variants, ratio_label

__all__ = [
    "STRATEGIES",
    "build_mix",
    "heuristic_variants",
    "mix_stats_path",
    "ratio_label",
]

log = logging.getLogger(__name__)

STRATEGIES = ("heuristic", "armorm", "hummer")


def build_mix(
    strategy: str,
    mix_cfg: Mapping[str, Any],
    pair_files: Mapping[str, str | Path],
    groups: Mapping[str, Sequence[str]],
    out: str | Path,
    *,
    seed: int,
    ratio: float | None = None,
    work: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one mixture from the datasets' pair files; write it and its stats; return the stats.

    mix_cfg: config `mixtures` (a block per strategy). pair_files: dataset -> pairs JSONL.
    groups: config `groups`. ratio: the heuristic's ratio (one of mixtures.heuristic.ratios).
    work: run context, all optional —
        cache_dir   scoring / labelling / sample caches   default mixtures.cache_dir, else <out dir>/cache
        device      reward model and policy device        default cuda if available, else cpu
        judge       judge config when mixtures.hummer.judge is null (config evaluate.judge)
        generation  generation config for on_policy (config evaluate.generation)
        policy      policy model directory for on_policy (the base model)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mix strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    work = dict(work or {})
    out = Path(out)
    cfg = dict(mix_cfg.get(strategy) or {})
    cache_dir = Path(work.get("cache_dir") or mix_cfg.get("cache_dir") or out.parent / "cache")
    pool = load_pool(pair_files, groups)
    pool_pairs = len(pool)
    if strategy != "heuristic" and cfg.get("pool_size"):
        # scoring / labelling every pair of every dataset can be costly: cap the candidates
        pool = subsample_pool(pool, int(cfg["pool_size"]), seed, strategy)
    params: dict[str, Any] = {k: v for k, v in cfg.items() if k != "judge"}

    if strategy == "heuristic":
        from mixmerge.mix.heuristic import heuristic_mix

        if ratio is None:
            raise ValueError("mix strategy heuristic needs a ratio (--ratio)")
        params["ratio"] = float(ratio)
        pairs, stats = heuristic_mix(pool, cfg, list(groups), float(ratio), seed)
    elif strategy == "armorm":
        from mixmerge.mix.armorm import armorm_mix

        pairs, stats = armorm_mix(
            pool,
            cfg,
            seed=seed,
            cache_dir=cache_dir,
            device=work.get("device"),
            policy=work.get("policy"),
            gen_cfg=work.get("generation"),
        )
    else:
        from mixmerge.mix.hummer import hummer_mix

        judge_cfg = dict(cfg.get("judge") or work.get("judge") or {})
        if not judge_cfg:
            raise ValueError(
                "mix strategy hummer needs a judge (mixtures.hummer.judge or evaluate.judge)"
            )
        if work.get("device") and judge_cfg.get("backend") != "openai":
            judge_cfg.setdefault("device", work["device"])
        pairs, stats = hummer_mix(pool, cfg, judge_cfg, seed=seed, cache_dir=cache_dir)

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
