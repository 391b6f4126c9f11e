"""Heuristic mixture: (honesty + harmlessness) data to helpfulness data at a fixed ratio.

The paper mixes all datasets with the ratio r = |other| / |helpful| in {1/5, 1/10, 1/20} and keeps
the best of the three trained models. Which groups count on which side is config
(`helpful_groups`, `other_groups`); by default the two mixed groups (helpful_honest =
UltraFeedback, helpful_harmless = PKU-SafeRLHF + Nectar) count as helpful-side, because the
ratio is about adding honesty/harmlessness data to general helpfulness data. A group in neither
list is left out of the mix.

Sizes (`size`):
- `paper` (default): the helpful side is used whole and the other side sampled to
  round(r * |helpful|); when the other side is too small, it is used whole and the helpful side
  sampled to round(|other| / r) instead; a `budget` caps the total. Either way
  |other| = round(r * |helpful|) (ratio exact within rounding). With the paper's data the other
  side (about 5.1k pairs) is the short one, so the ratios 1/5, 1/10, 1/20 give about 31k, 56k and
  107k pairs: ratio and data volume change together.
- `constant`: every ratio's mix has the same total T, the largest that every configured ratio
  can reach (the smallest of their `paper` totals); ratio r then takes round(T / (1 + r)) helpful
  pairs and the rest from the other side, so the variants differ only in proportion.
Within a side, each dataset contributes in proportion to its size (largest remainder), sampled
without replacement with a per-dataset seeded RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from mixmerge.mix.common import (
    Pair,
    allocate,
    round_half_up,
    sample_indices,
    seeded_rng,
)
from mixmerge.mix.settings import HeuristicSettings


def ratio_label(ratio: float) -> str:
    """0.1 -> "1to10": a wildcard-safe name for one ratio's mix and model."""
    frac = Fraction(ratio).limit_denominator(1000)
    return f"{frac.numerator}to{frac.denominator}"


def heuristic_variants(heuristic: HeuristicSettings) -> dict[str, float]:
    """label -> ratio for every configured ratio (config `mixtures.heuristic.ratios`)."""
    ratios = list(heuristic.ratios)
    variants = {ratio_label(r): r for r in ratios}
    if len(variants) != len(ratios):
        raise ValueError(f"mixtures.heuristic.ratios: two ratios share a label ({ratios})")
    return variants


def _sides(heuristic: HeuristicSettings, groups: Sequence[str]) -> tuple[list[str], list[str]]:
    helpful, other = list(heuristic.helpful_groups), list(heuristic.other_groups)
    both = sorted(set(helpful) & set(other))
    if both:
        raise ValueError(f"mixtures.heuristic: group {both[0]!r} is on both sides of the ratio")
    for name in helpful + other:
        if name not in groups:
            raise ValueError(
                f"mixtures.heuristic: unknown group {name!r} (groups: {', '.join(groups)})"
            )
    return helpful, other


def side_sizes(n_helpful: int, n_other: int, ratio: float, budget: int | None) -> tuple[int, int]:
    """(helpful, other) counts with other = round(ratio * helpful), as large as data and budget allow."""
    h = n_helpful
    if round_half_up(ratio * h) > n_other:
        # too little honesty/harmlessness data: shrink the helpful side instead
        h = min(n_helpful, round_half_up(n_other / ratio))
    if budget is not None and h + round_half_up(ratio * h) > budget:
        h = min(h, round_half_up(budget / (1 + ratio)))
    # the estimates above can overshoot by one after rounding; step down until both fit
    while h > 0 and (
        round_half_up(ratio * h) > n_other
        or (budget is not None and h + round_half_up(ratio * h) > budget)
    ):
        h -= 1
    return h, round_half_up(ratio * h)


def constant_sizes(
    n_helpful: int, n_other: int, ratio: float, ratios: Sequence[float], budget: int | None
) -> tuple[int, int]:
    """(helpful, other) counts of `ratio`'s mix when every ratio's mix has the same total: the
    smallest of the ratios' `paper` totals, split as round(T / (1 + ratio)) helpful pairs."""
    total = min(sum(side_sizes(n_helpful, n_other, float(r), budget)) for r in {*ratios, ratio})
    h = min(n_helpful, round_half_up(total / (1 + ratio)))
    o = min(n_other, total - h)
    return total - o, o  # rounding overshoot on one side moves to the other


def _take(pool: Sequence[Pair], indices: list[int], total: int, seed: int, side: str) -> list[int]:
    """`total` pool indices from `indices`, each dataset in proportion to its size."""
    by_dataset: dict[str, list[int]] = {}
    for i in indices:
        by_dataset.setdefault(pool[i]["source"], []).append(i)
    counts = allocate(total, {d: len(ix) for d, ix in by_dataset.items()})
    chosen: list[int] = []
    for dataset, ix in by_dataset.items():
        rng = seeded_rng(seed, "heuristic", side, dataset)
        chosen += [ix[j] for j in sample_indices(len(ix), counts[dataset], rng)]
    return chosen


def heuristic_mix(
    pool: Sequence[Pair],
    heuristic: HeuristicSettings,
    groups: Sequence[str],
    ratio: float,
    seed: int,
) -> tuple[list[Pair], dict[str, Any]]:
    """The pairs of one ratio's mix (in pool order) and its strategy-specific stats."""
    if not ratio > 0:
        raise ValueError(f"mixtures.heuristic: ratio must be > 0, got {ratio}")
    helpful_groups, other_groups = _sides(heuristic, groups)
    budget, size = heuristic.budget, heuristic.size
    helpful_ix = [i for i, p in enumerate(pool) if p["dimension"] in helpful_groups]
    other_ix = [i for i, p in enumerate(pool) if p["dimension"] in other_groups]
    if not helpful_ix or not other_ix:
        raise ValueError(
            "mixtures.heuristic: need pairs on both sides "
            f"(helpful: {len(helpful_ix)}, honesty/harmlessness: {len(other_ix)})"
        )
    if size == "constant":
        n_h, n_o = constant_sizes(len(helpful_ix), len(other_ix), ratio, heuristic.ratios, budget)
    else:
        n_h, n_o = side_sizes(len(helpful_ix), len(other_ix), ratio, budget)
    if n_o == 0 or n_h == 0:
        raise ValueError(
            f"mixtures.heuristic: ratio {ratio} leaves one side empty "
            f"({n_h} helpful, {n_o} other pairs)"
        )
    keep = set(_take(pool, helpful_ix, n_h, seed, "helpful"))
    keep |= set(_take(pool, other_ix, n_o, seed, "other"))
    pairs = [pool[i] for i in sorted(keep)]
    excluded = sorted({p["dimension"] for p in pool} - set(helpful_groups) - set(other_groups))
    stats = {
        "ratio": ratio,
        "ratio_label": ratio_label(ratio),
        "ratio_achieved": n_o / n_h,
        "size": size,
        "pairs": n_h + n_o,
        "helpful_pairs": n_h,
        "other_pairs": n_o,
        "available": {"helpful": len(helpful_ix), "other": len(other_ix)},
        "helpful_groups": helpful_groups,
        "other_groups": other_groups,
        "excluded_groups": excluded,
        "budget": budget,
    }
    return pairs, stats
