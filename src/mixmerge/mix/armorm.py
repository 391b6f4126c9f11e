"""ArmoRM mixture: select or build preference pairs with a multi-objective reward model.

Two modes (config `mixtures.armorm.mode`):

relabel    Score both responses of every pair of every dataset. Orient each pair by score
           (the higher-scored response becomes `chosen`; the number flipped is reported), drop
           pairs whose margin |s_chosen - s_rejected| is <= `min_margin` (ties carry no
           preference), and keep the `budget` pairs with the largest margins (null = all).
           Ties in margin are broken by pool order, so the selection is deterministic.
on_policy  The SimPO recipe: sample `samples_per_prompt` (5) responses per prompt from the policy
           (temperature 0.8, top_p 0.95, up to 4,096 new tokens: SimPO's
           `max_tokens=4096`) with `evaluate.generation.generate_chat`, score them,
           chosen = the best, rejected = the worst; prompts whose samples are all identical (or
           whose best and worst score the same) are dropped. Prompts are the unique prompts of
           the pool, `budget` of them sampled with the seed (null = all). Samples are cached per
           (policy, prompt, sampling parameters), so a rerun regenerates nothing.

Scores come from `mixmerge.mix.reward.RewardScorer` (batched, cached per response).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.judge.cache import JsonlCache
from mixmerge.mix.common import (
    Pair,
    model_identity,
    prompt_key,
    sample_indices,
    seeded_rng,
    sha256_json,
    slug,
    summary,
)
from mixmerge.mix.reward import RewardScorer
from mixmerge.mix.settings import ArmormSettings, OnPolicySettings

log = logging.getLogger(__name__)

GenerateFn = Callable[..., list[str]]


def relabel(
    pool: Sequence[Pair],
    scorer: RewardScorer,
    budget: int | None = None,
    min_margin: float = 0.0,
) -> tuple[list[Pair], dict[str, Any]]:
    """Orient every pair by reward score and keep the largest-margin ones (pool order kept)."""
    items = [(p["prompt"], p["chosen"]) for p in pool] + [
        (p["prompt"], p["rejected"]) for p in pool
    ]
    records = scorer.score(items)
    n = len(pool)
    candidates: list[tuple[float, int, Pair]] = []
    flipped = ties = 0
    for i, pair in enumerate(pool):
        s_c, s_r = records[i]["score"], records[n + i]["score"]
        if s_r > s_c:
            flipped += 1
            pair = {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}
        margin = abs(s_c - s_r)
        if margin <= min_margin:
            ties += 1
            continue
        candidates.append((margin, i, pair))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    kept = candidates if budget is None else candidates[:budget]
    kept.sort(key=lambda c: c[1])
    margins = [c[0] for c in kept]
    stats = {
        "mode": "relabel",
        "budget": budget,
        "min_margin": min_margin,
        "pool_pairs": n,
        "flipped": flipped,
        "dropped_ties": ties,
        "margin_threshold": min(margins) if margins else None,
        "margins": summary(margins),
        "flipped_in_mix": sum(1 for _, i, p in kept if p["chosen"] != pool[i]["chosen"]),
    }
    return [c[2] for c in kept], stats


def unique_prompts(pool: Sequence[Pair]) -> list[Pair]:
    """The first pair of every distinct prompt (its source and dimension label the new pair)."""
    seen: set[str] = set()
    firsts = []
    for pair in pool:
        key = prompt_key(pair["prompt"])
        if key not in seen:
            seen.add(key)
            firsts.append(pair)
    return firsts


def sample_responses(
    prompts: Sequence[Pair],
    policy: str | Path,
    gen_cfg: Mapping[str, Any],
    k: int,
    device: str,
    cache: JsonlCache,
    chunk_prompts: int,
    generate: GenerateFn,
) -> tuple[list[list[str]], dict[str, int]]:
    """k sampled replies per prompt, from the cache or the policy (in cached chunks)."""
    identity = [model_identity(policy), k, {kk: gen_cfg.get(kk) for kk in sorted(gen_cfg)}]
    keys = [sha256_json([identity, prompt_key(p["prompt"])]) for p in prompts]
    todo = [i for i, key in enumerate(keys) if key not in cache]
    for start in range(0, len(todo), max(chunk_prompts, 1)):
        part = todo[start : start + chunk_prompts]
        convs = [prompts[i]["prompt"] for i in part for _ in range(k)]
        # draw j of a prompt is its j-th sample: k different samples, each reproducible
        replies = generate(policy, convs, dict(gen_cfg), device, draws=list(range(k)) * len(part))
        cache.put_many(
            {keys[i]: {"samples": replies[j * k : (j + 1) * k]} for j, i in enumerate(part)}
        )
    samples = [cache.get(key)["samples"] for key in keys]  # type: ignore[index]
    return samples, {"generated_prompts": len(todo), "cached_prompts": len(keys) - len(todo)}


def on_policy(
    pool: Sequence[Pair],
    scorer: RewardScorer,
    policy: str | Path,
    gen_cfg: Mapping[str, Any],
    device: str,
    cache_dir: str | Path,
    seed: int,
    budget: int | None = None,
    options: OnPolicySettings | None = None,
    generate: GenerateFn | None = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """SimPO-style pairs: best vs worst of k policy samples per prompt, by reward score."""
    opts = options or OnPolicySettings()
    k = opts.samples_per_prompt
    if k < 2:
        raise ValueError("mixtures.armorm.on_policy.samples_per_prompt must be >= 2")
    if generate is None:
        from mixmerge.runtime.generation import generate_chat as generate
    prompts = unique_prompts(pool)
    if budget is not None and budget < len(prompts):
        rng = seeded_rng(seed, "armorm", "prompts")
        prompts = [prompts[i] for i in sample_indices(len(prompts), budget, rng)]
    sampling = {
        **gen_cfg,
        "temperature": float(opts.temperature),
        "top_p": float(opts.top_p),
        "seed": seed,
    }
    if opts.max_new_tokens:
        sampling["max_new_tokens"] = opts.max_new_tokens
    cache = JsonlCache(Path(cache_dir) / "samples" / f"{slug(str(policy))}.jsonl")
    samples, gen_stats = sample_responses(
        prompts, policy, sampling, k, device, cache, opts.chunk_prompts, generate
    )
    records = scorer.score(
        [(p["prompt"], s) for p, group in zip(prompts, samples, strict=True) for s in group]
    )
    pairs: list[Pair] = []
    margins: list[float] = []
    identical = tied = 0
    for j, (pair, group) in enumerate(zip(prompts, samples, strict=True)):
        if len({s.strip() for s in group}) < 2:
            identical += 1
            continue
        scores = [r["score"] for r in records[j * k : (j + 1) * k]]
        best = max(range(k), key=lambda i: scores[i])  # first index wins ties
        worst = min(range(k), key=lambda i: scores[i])
        if scores[best] == scores[worst] or group[best].strip() == group[worst].strip():
            tied += 1
            continue
        margins.append(scores[best] - scores[worst])
        pairs.append({**pair, "chosen": group[best], "rejected": group[worst]})
    stats = {
        "mode": "on_policy",
        "budget": budget,
        "policy": str(policy),
        "prompts": len(prompts),
        "samples_per_prompt": k,
        "sampling": {
            kk: sampling.get(kk) for kk in ("temperature", "top_p", "max_new_tokens", "seed")
        },
        "dropped_identical": identical,
        "dropped_tied": tied,
        "margins": summary(margins),
        **gen_stats,
    }
    return pairs, stats


def armorm_mix(
    pool: Sequence[Pair],
    armorm: ArmormSettings,
    *,
    seed: int,
    cache_dir: str | Path,
    device: str | None = None,
    policy: str | Path | None = None,
    gen_cfg: Mapping[str, Any] | None = None,
    generate: GenerateFn | None = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """Run the configured mode; the stats include the scorer's cache and call counts."""
    budget = armorm.budget
    scorer = RewardScorer(armorm.reward_model, cache_dir, device=device)
    try:
        if armorm.mode == "relabel":
            pairs, stats = relabel(pool, scorer, budget, armorm.min_margin)
        else:
            if not policy:
                raise ValueError("armorm on_policy needs the policy model directory")
            import torch

            pairs, stats = on_policy(
                pool,
                scorer,
                policy,
                gen_cfg or {},
                device or ("cuda" if torch.cuda.is_available() else "cpu"),
                cache_dir,
                seed,
                budget,
                armorm.on_policy,
                generate,
            )
    finally:
        scorer.close()
    return pairs, {**stats, "scoring": scorer.stats()}
