"""Fused CPU loops (numba) for the sparsifying methods' per-entry passes.

The numpy/torch forms of these steps take one pass over memory per op (|δ|, two compares, an
`and`, a gather; a compare, a product; per task vector a product, a compare, a multiply-add);
each loop here does the same arithmetic in one pass, on float32 or float64 CPU arrays, with the
GIL released so the engine's workers run them side by side. They are exact replicas, not
approximations: the same IEEE operations in the same order, so every result is bit-identical to
the torch path it replaces (tests/merge/test_kernels.py checks each against it). numba does
not reorder or contract float arithmetic unless asked (no `fastmath` here).

Compiled on first use and cached on disk next to this file (or in numba's user cache where that
is read-only), so a merge pays the compile once per machine.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True)


@_jit
def abs_bracket(x: np.ndarray, lo: float, hi: float, inside: np.ndarray) -> tuple[int, int]:
    """How many |x| lie below `lo`, and how many in [lo, hi]; the first len(inside) of the
    latter are written to `inside` in order (a count above its length means it overflowed).
    `np.count_nonzero(a < lo)` and `np.compress((a >= lo) & (a <= hi), a)` for a = |x|."""
    below = 0
    n_inside = 0
    last = inside.shape[0] - 1
    for i in range(x.shape[0]):
        a = abs(x[i])
        below += a < lo
        # every entry is written at the next free slot and only those inside advance it:
        # no branch on the values, which take both ways at random
        inside[min(n_inside, last)] = a
        n_inside += (a >= lo) & (a <= hi)
    return below, n_inside


@_jit
def tie_cut(x: np.ndarray, thr: float, need: int) -> int:
    """The position just past the `need`-th entry with |x| == thr (0 when need ≤ 0, len(x)
    when there are fewer): those before it are the ties a stable sort takes first. Counted
    in blocks, which vectorise, and only the block that holds the cut is walked entry by
    entry."""
    n = x.shape[0]
    if need <= 0:
        return 0
    for s in range(0, n, 4096):
        e = min(s + 4096, n)
        ties = 0
        for i in range(s, e):
            ties += abs(x[i]) == thr
        if ties >= need:
            for i in range(s, e):
                need -= abs(x[i]) == thr
                if need == 0:
                    return i + 1
        need -= ties
    return n


@_jit
def keep_largest(x: np.ndarray, thr: float, need: int) -> None:
    """Zero (+0.0), in place, every entry of `x` but those with |x| > thr and the first `need`
    with |x| == thr: the top-k mask of a stable descending sort of |x|, applied."""
    zero = x.dtype.type(0)
    cut = tie_cut(x, thr, need)
    for i in range(x.shape[0]):  # a select, no branch: the loop vectorises
        a = abs(x[i])
        x[i] = x[i] if (a > thr) | ((a == thr) & (i < cut)) else zero


@_jit
def keep_band(x: np.ndarray, top: float, top_need: int, bottom: float, bottom_need: int) -> None:
    """Zero (+0.0), in place, every entry of `x` outside the band of |x| that Breadcrumbs
    keeps: the n − n_top first of a stable ascending sort (|x| < top, and the first `top_need`
    equal to it) less its n_bot first (|x| < bottom, and the first `bottom_need` equal to it)."""
    zero = x.dtype.type(0)
    top_cut = tie_cut(x, top, top_need)
    bottom_cut = tie_cut(x, bottom, bottom_need)
    for i in range(x.shape[0]):
        a = abs(x[i])
        kept = (a < top) | ((a == top) & (i < top_cut))
        dropped = (a < bottom) | ((a == bottom) & (i < bottom_cut))
        x[i] = x[i] if kept & ~dropped else zero


@_jit
def keep_below(x: np.ndarray, u: np.ndarray, p: float) -> None:
    """Zero (+0.0), in place, every entry of `x` whose draw `u` is not below `p` (DARE)."""
    zero = x.dtype.type(0)
    for i in range(x.shape[0]):
        x[i] = x[i] if u[i] < p else zero


@_jit
def sign_consensus(
    deltas: tuple[np.ndarray, ...],
    weights: np.ndarray,
    out: np.ndarray,
    normalize: bool,
    lam: float,
) -> None:
    """out += lam · Σⱼ agreeⱼ·wⱼ·δⱼ [÷ Σⱼ agreeⱼ·wⱼ, 1 where that is 0]: TIES's "sum" election,
    entry by entry, as `GeneralizedTaskArithmetic.merge`'s torch form computes it: the sum
    (w₀δ₀ + w₁δ₁) + …, its sign (copysign, so −0.0 elects −), agreeᵢ = 1.0 where wⱼδⱼ·sign > 0
    (else 0.0), the masked sum and divisor from +0.0 in model order, then ÷, × lam, +=.
    `lam` is applied when it is not 1 (x·1 is x)."""
    one = out.dtype.type(1)
    zero = out.dtype.type(0)
    scale = out.dtype.type(lam)
    t = len(deltas)
    for i in range(out.shape[0]):
        total = deltas[0][i] * weights[0]
        for j in range(1, t):
            total += deltas[j][i] * weights[j]
        sign = np.copysign(one, total)
        mixed = zero
        div = zero
        for j in range(t):
            x = deltas[j][i] * weights[j]
            agree = one if x * sign > zero else zero
            mixed += x * agree
            div += weights[j] * agree
        if normalize:
            if div == zero:
                div += one
            mixed /= div
        if lam != 1:
            mixed *= scale
        out[i] += mixed


@_jit
def keep_below_each(x: np.ndarray, u: np.ndarray, p: np.ndarray) -> None:
    """Zero (+0.0), in place, every entry of `x` whose draw `u` is not below its own `p`
    (DELLA's per-entry keep probability)."""
    zero = x.dtype.type(0)
    for i in range(x.shape[0]):
        x[i] = x[i] if u[i] < p[i] else zero


@_jit
def subtract_if_finite(x: np.ndarray, base: np.ndarray) -> bool:
    """x −= base in place; False when an entry of x was NaN/Inf (x is then garbage: the
    caller raises). The engine's task vector formation: its check and subtraction, one pass."""
    probe = x.dtype.type(0)
    for i in range(x.shape[0]):
        value = x[i]
        probe += value - value  # 0 for a finite value, NaN for NaN/Inf
        x[i] = value - base[i]
    return probe == 0
