"""The Pareto front of a search's trials (every objective maximised), its hypervolume, and the
points the config selects from it.

Objectives are the dev Helpful, Honest and Harmless averages, on the tables' 0-100 scale. The
hypervolume is measured from the reference point (0, 0, 0), the worst score on every axis, so it
is comparable across spaces of one run; it is computed exactly (slices along the first objective,
each a 2-D staircase), which is cheap for the few hundred trials a search runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Vector = tuple[float, ...]


def dominates(a: Vector, b: Vector) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def non_dominated(points: Mapping[int, Vector]) -> list[int]:
    """Keys of the points no other point dominates (ties: both kept), in key order."""
    return [
        k for k, p in sorted(points.items())
        if not any(dominates(q, p) for j, q in points.items() if j != k)
    ]


def _area_2d(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by `points` (maximised) above `ref`."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(points, reverse=True):  # by x descending
        if y > best_y and x > ref[0]:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return area


def hypervolume(points: Sequence[Vector], ref: Vector = (0.0, 0.0, 0.0)) -> float:
    """The volume dominated by `points` (maximised, 2 or 3 objectives) above `ref`."""
    pts = [p for p in points if all(x > r for x, r in zip(p, ref, strict=True))]
    if not pts:
        return 0.0
    if len(ref) == 2:
        return _area_2d([(p[0], p[1]) for p in pts], (ref[0], ref[1]))
    # slice along objective 0: between consecutive values, the 2-D area of the points above
    levels = sorted({p[0] for p in pts}, reverse=True)
    volume = 0.0
    for i, level in enumerate(levels):
        lower = levels[i + 1] if i + 1 < len(levels) else ref[0]
        above = [(p[1], p[2]) for p in pts if p[0] >= level]
        volume += (level - lower) * _area_2d(above, (ref[1], ref[2]))
    return volume


def knee(front: Mapping[int, Vector]) -> int:
    """The front's compromise point: closest (Euclidean) to the ideal point once each objective
    is scaled to [0, 1] over the front; an objective the front does not vary is ignored. Ties:
    the lower key."""
    keys = sorted(front)
    dims = len(front[keys[0]])
    lows = [min(front[k][d] for k in keys) for d in range(dims)]
    highs = [max(front[k][d] for k in keys) for d in range(dims)]

    def distance(k: int) -> float:
        return sum(
            ((highs[d] - front[k][d]) / (highs[d] - lows[d])) ** 2
            for d in range(dims)
            if highs[d] > lows[d]
        )

    return min(keys, key=lambda k: (distance(k), k))


def best_weighted(points: Mapping[int, Vector], weights: Sequence[float]) -> int:
    """The key with the best weighted mean of its objectives (ties: the lower key)."""
    total = sum(weights)
    return min(
        sorted(points),
        key=lambda k: (-sum(w * x for w, x in zip(weights, points[k], strict=True)) / total, k),
    )
