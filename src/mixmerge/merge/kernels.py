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


# de Bruijn table: the index of a uint64's lowest set bit b is _LOW_BIT[(b · C) >> 58]
_DEBRUIJN = 0x03F79D71B4CB0A89
_LOW_BIT = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _LOW_BIT[(((1 << _i) * _DEBRUIJN) & 0xFFFFFFFFFFFFFFFF) >> 58] = _i
_U64 = np.uint64


@_jit
def abs_bracket(x: np.ndarray, lo: float, hi: float, inside: np.ndarray) -> tuple[int, int]:
    """How many |x| lie below `lo`, and how many in [lo, hi]; the first len(inside) of the
    latter are written to `inside` in order (a count above its length means it overflowed).
    `np.count_nonzero(a < lo)` and `np.compress((a >= lo) & (a <= hi), a)` for a = |x|."""
    n = x.shape[0]
    cap = inside.shape[0]
    below = 0
    n_inside = 0
    # 64 entries at a time: the compares vectorise into a 64-bit mask of those inside, whose
    # set bits are then walked (a few per word: the bracket holds a few % of the entries).
    # 0.48 ns an entry, where storing every entry at the next free slot took 1.4 ns
    for s in range(0, n - n % 64, 64):
        bits = _U64(0)
        for j in range(64):
            a = abs(x[s + j])
            below += a < lo
            bits |= _U64((a >= lo) & (a <= hi)) << _U64(j)
        while bits:
            low = bits & (~bits + _U64(1))
            if n_inside < cap:
                inside[n_inside] = abs(x[s + _LOW_BIT[(low * _U64(_DEBRUIJN)) >> _U64(58)]])
            n_inside += 1
            bits ^= low
    for i in range(n - n % 64, n):
        a = abs(x[i])
        below += a < lo
        if (a >= lo) & (a <= hi):
            if n_inside < cap:
                inside[n_inside] = a
            n_inside += 1
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


# --- torch's CPU random stream -----------------------------------------------------------------
# `torch.rand(n, generator=g)` with g seeded s is MT19937 (std::mt19937's, seeded with the low
# 32 bits of s) with each 32-bit output y mapped to (y & 0xFFFFFF)·2⁻²⁴ in float32. torch draws
# them one by one (~8 ns each here); these loops make the same words a 624-word block at a time
# in uint32 (~0.7 ns each), and the masks consume them without storing the draws.

_MT_N = 624
_MT_SHIFT = 397
_U32 = np.uint32


@_jit
def _mt_state(seed: int) -> np.ndarray:
    """MT19937's initial state for `seed` (init_genrand on its low 32 bits)."""
    state = np.empty(_MT_N, np.uint32)
    word = np.uint64(seed) & np.uint64(0xFFFFFFFF)
    state[0] = _U32(word)
    for i in range(1, _MT_N):
        word = (np.uint64(1812433253) * (word ^ (word >> np.uint64(30))) + np.uint64(i)) & (
            np.uint64(0xFFFFFFFF)
        )
        state[i] = _U32(word)
    return state


@_jit
def _mt_next_block(state: np.ndarray, out: np.ndarray) -> None:
    """Advance `state` by one twist and write the first len(out) ≤ 624 uniforms it yields."""
    upper, lower, matrix, one = _U32(0x80000000), _U32(0x7FFFFFFF), _U32(0x9908B0DF), _U32(1)
    wrap = _MT_N - _MT_SHIFT
    for i in range(wrap):  # split where i + 397 wraps, so each loop reads with one offset
        y = (state[i] & upper) | (state[i + 1] & lower)
        state[i] = state[i + _MT_SHIFT] ^ (y >> one) ^ (matrix * (y & one))
    for i in range(wrap, _MT_N - 1):
        y = (state[i] & upper) | (state[i + 1] & lower)
        state[i] = state[i - wrap] ^ (y >> one) ^ (matrix * (y & one))
    y = (state[_MT_N - 1] & upper) | (state[0] & lower)
    state[_MT_N - 1] = state[_MT_SHIFT - 1] ^ (y >> one) ^ (matrix * (y & one))
    scale = np.float32(1.0 / 16777216.0)
    for i in range(out.shape[0]):  # the tempering, then torch's 24-bit float32 mapping
        y = state[i]
        y ^= y >> _U32(11)
        y ^= (y << _U32(7)) & _U32(0x9D2C5680)
        y ^= (y << _U32(15)) & _U32(0xEFC60000)
        y ^= y >> _U32(18)
        out[i] = np.float32(y & _U32(0xFFFFFF)) * scale


@_jit
def uniform_fill(out: np.ndarray, seed: int) -> None:
    """`out` (float32) ← torch.rand(len(out), generator=torch.Generator().manual_seed(seed))."""
    state = _mt_state(seed)
    for s in range(0, out.shape[0], _MT_N):
        _mt_next_block(state, out[s : s + _MT_N])


@_jit
def keep_below(x: np.ndarray, seed: int, p: np.ndarray, per_entry: bool) -> tuple[float, float]:
    """Zero (+0.0), in place, every entry of `x` whose uniform draw (`uniform_fill`'s i-th for
    `seed`) is not below p: `p[i]` (`per_entry`, DELLA) or `p[0]` (DARE). The compare is in
    the promoted dtype of float32 and p's, as torch's `draws < p`. Returns ‖x‖₁ before and
    after, each summed entry by entry in order in x's dtype: torch's `vector_norm(x, 1)` on
    one intra-op thread."""
    zero = x.dtype.type(0)
    before = zero
    after = zero
    state = _mt_state(seed)
    draws = np.empty(_MT_N, np.float32)
    step = 1 if per_entry else 0
    for s in range(0, x.shape[0], _MT_N):
        block = x[s : s + _MT_N]
        _mt_next_block(state, draws[: block.shape[0]])
        for i in range(block.shape[0]):
            value = block[i]
            before += abs(value)
            kept = value if draws[i] < p[(s + i) * step] else zero
            after += abs(kept)
            block[i] = kept
    return before, after


@_jit
def _mt_take(state: np.ndarray, block: np.ndarray, cursor: np.ndarray, out: np.ndarray) -> None:
    """The stream's next len(out) uniforms into `out`: `block` holds the current 624 and
    cursor[0] how many of them were taken (624: none left)."""
    done = 0
    while done < out.shape[0]:
        if cursor[0] == _MT_N:
            whole = (out.shape[0] - done) // _MT_N * _MT_N
            for s in range(done, done + whole, _MT_N):  # whole blocks: straight into `out`
                _mt_next_block(state, out[s : s + _MT_N])
            done += whole
            if done == out.shape[0]:
                break
            _mt_next_block(state, block)
            cursor[0] = 0
        take = min(out.shape[0] - done, _MT_N - cursor[0])
        out[done : done + take] = block[cursor[0] : cursor[0] + take]
        cursor[0] += take
        done += take


@_jit
def row_rank_keys(x: np.ndarray, keys: np.ndarray) -> None:
    """keys[r, c] = bits(|x[r, c]|) · 2¹⁶ + c (float32 x, fewer than 2¹⁶ columns): unique int64
    keys whose ascending order is a stable ascending sort of each row's |x| (the bits of a
    non-negative float order as the float)."""
    for r in range(x.shape[0]):
        bits = x[r].view(np.uint32)
        for c in range(x.shape[1]):
            keys[r, c] = (np.int64(bits[c] & np.uint32(0x7FFFFFFF)) << 16) | c


@_jit
def ranked_keep_below(
    x: np.ndarray,
    sorted_keys: np.ndarray,
    table: np.ndarray,
    stream: tuple[np.ndarray, np.ndarray, np.ndarray],
    divide: bool,
    sums: np.ndarray,
) -> None:
    """DELLA's drop on rows of float32 `x`, in place: an entry of rank i in its row (its
    position in the row's `sorted_keys`, from `row_rank_keys` sorted) has keep probability
    p = table[i]; it stays where the stream's next draw is below p (row-major order, float32
    compare), +0.0 elsewhere; with `divide` every entry is then divided by its p. sums[0] and
    sums[1] gather ‖x‖₁ before and after, entry by entry in order (torch's order on one
    thread), across calls."""
    state, block, cursor = stream
    n = x.shape[1]
    probs = np.empty(n, np.float32)
    draws = np.empty(n, np.float32)
    zero = np.float32(0)
    before = sums[0]
    after = sums[1]
    for r in range(x.shape[0]):
        for i in range(n):
            probs[sorted_keys[r, i] & 0xFFFF] = table[i]
        _mt_take(state, block, cursor, draws)
        row = x[r]
        for c in range(n):
            value = row[c]
            before += abs(value)
            kept = value if draws[c] < probs[c] else zero
            after += abs(kept)
            row[c] = kept / probs[c] if divide else kept
    sums[0] = before
    sums[1] = after


# `bucketed_keep_below`: the buckets of a row, 2^5 per binade of |x| over the 8 binades
# below the row's largest (smaller magnitudes share bucket 0)
_BUCKET_SHIFT = 18
_N_BUCKETS = 256


@_jit
def _stable_rank(keys: np.ndarray, c: int) -> int:
    """How many entries precede keys[c] in a stable ascending sort of `keys`."""
    key = keys[c]
    rank = 0
    for j in range(keys.shape[0]):  # branch-free: this loop vectorises
        k = keys[j]
        rank += np.int64(k < key) + np.int64((k == key) & (j < c))
    return rank


@_jit
def bucketed_keep_below(
    x: np.ndarray,
    table: np.ndarray,
    stream: tuple[np.ndarray, np.ndarray, np.ndarray],
    sums: np.ndarray,
) -> None:
    """`ranked_keep_below` without `divide`, bit for bit, and without sorting the rows.

    A histogram of each row's |x| over buckets ordered as the keys of `row_rank_keys` bounds
    the rank of every entry of bucket b to [start_b, start_b+1); the table does not decrease,
    so a draw below table[start_b] keeps the entry and one at or past table[start_b+1 − 1]
    drops it, whatever its rank in the bucket. Only the draws in between (0.2-0.3% of the
    entries on Gaussian-like rows) need the exact rank: the entries before it in a stable
    sort, counted in one pass over the row, after the row's other decisions (inside the
    deciding loop that count ran 20x slower). 3.0-3.2 ns an entry, where keys, sort and
    drop took 4.7-5.0 (rows of 1024 and 2816, one thread)."""
    state, block, cursor = stream
    n = x.shape[1]
    draws = np.empty(n, np.float32)
    mags = np.empty(n, np.uint32)
    starts = np.empty(_N_BUCKETS + 1, np.int64)
    counts = np.empty((4, _N_BUCKETS), np.int64)
    keeps = np.empty(n, np.bool_)
    open_ = np.empty(n, np.int64)
    sure = np.empty(_N_BUCKETS, np.float32)  # a draw below: kept
    gone = np.empty(_N_BUCKETS, np.float32)  # a draw at or above: dropped
    zero = np.float32(0)
    before = sums[0]
    after = sums[1]
    for r in range(x.shape[0]):
        row = x[r]
        bits = row.view(np.uint32)
        top = _U32(0)
        for c in range(n):
            m = bits[c] & _U32(0x7FFFFFFF)
            mags[c] = m
            top = max(top, m)
        offset = np.int64(top >> _U32(_BUCKET_SHIFT)) - (_N_BUCKETS - 1)
        # four interleaved histograms: neighbours in one bucket do not wait on each other's
        # increment
        counts[:] = 0
        for c in range(0, n - n % 4, 4):
            for i in range(4):
                counts[i, max(np.int64(mags[c + i] >> _U32(_BUCKET_SHIFT)) - offset, 0)] += 1
        for c in range(n - n % 4, n):
            counts[0, max(np.int64(mags[c] >> _U32(_BUCKET_SHIFT)) - offset, 0)] += 1
        starts[0] = 0
        for b in range(_N_BUCKETS):  # starts[b]: how many entries lie in the buckets below b
            starts[b + 1] = starts[b] + counts[0, b] + counts[1, b] + counts[2, b] + counts[3, b]
            # (an empty bucket's bounds are never read: clamped only to stay in the table)
            sure[b] = table[min(starts[b], n - 1)]
            gone[b] = table[max(starts[b + 1] - 1, 0)]
        _mt_take(state, block, cursor, draws)
        n_open = 0
        for c in range(n):
            u = draws[c]
            b = max(np.int64(mags[c] >> _U32(_BUCKET_SHIFT)) - offset, 0)
            keep = u < sure[b]
            keeps[c] = keep
            open_[n_open] = c
            n_open += (u < gone[b]) & (not keep)  # the bucket's ranks straddle the draw
        for i in range(n_open):
            c = open_[i]
            keeps[c] = draws[c] < table[_stable_rank(mags, c)]
        for c in range(n):
            value = row[c]
            before += abs(value)
            kept = value if keeps[c] else zero
            after += abs(kept)
            row[c] = kept
    sums[0] = before
    sums[1] = after


def mt_stream(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stream for `_mt_take` (and `ranked_keep_below`, `bucketed_keep_below`), at its start."""
    return _mt_state(seed), np.empty(_MT_N, np.float32), np.full(1, _MT_N, np.int64)


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
def sce_consensus(deltas: tuple[np.ndarray, ...], weights: np.ndarray, out: np.ndarray) -> None:
    """out += Σⱼ δⱼ·eⱼ / max(Σⱼ eⱼ, 1e-6), eⱼ = wⱼ where δⱼ's sign is the elected one (the
    sign of Σⱼ δⱼ, + for a sum ≥ 0; a zero δⱼ has neither), else 0: SCE's erase and combine as
    its torch form computes them, each `sum(dim=0)` from +0.0 in model order (torch's order
    for a reduction over the stacked models' dim)."""
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    floor = out.dtype.type(1e-6)
    t = len(deltas)
    for i in range(out.shape[0]):
        total = zero
        for j in range(t):
            total += deltas[j][i]
        up = total >= zero
        merged = zero
        div = zero
        for j in range(t):
            x = deltas[j][i]
            agree = x > zero if up else x < zero
            erased = weights[j] * (one if agree else zero)
            merged += x * erased
            div += erased
        out[i] += merged / (div if div >= floor else floor)


@_jit
def subtract_if_finite(x: np.ndarray, base: np.ndarray) -> bool:
    """x −= base in place (float32); False when an entry of x was NaN/Inf (x is then garbage:
    the caller raises). The engine's task vector formation: its check and subtraction."""
    return _finite32(x.view(np.int32)) & _subtract(x, base)


@_jit
def _finite32(bits: np.ndarray) -> bool:
    # an all-ones exponent (NaN/Inf) carries into bit 31 when 1 is added to it; OR-ing the
    # sums (integers, unlike a float probe) vectorises
    special = 0
    for i in range(bits.shape[0]):
        special |= (bits[i] & 0x7F800000) + 0x800000
    return (special & 0x80000000) == 0


@_jit
def _subtract(x: np.ndarray, base: np.ndarray) -> bool:
    for i in range(x.shape[0]):
        x[i] -= base[i]
    return True


@_jit
def widen_bf16_if_finite(raw: np.ndarray, out: np.ndarray, base: np.ndarray, subtract: bool) -> bool:
    """out ← float32(raw) [− base], `raw` being bfloat16 bit patterns (as int16); False when a
    raw value was NaN/Inf. bf16 is the top half of a float32, so widening is a 16-bit shift
    (exact, as torch's `.float()`); the check, the shift and the task vector's subtraction
    are each a loop that vectorises (`base` is not read unless `subtract`)."""
    special = 0
    for i in range(raw.shape[0]):  # as in _finite32, on bf16's exponent
        special |= (np.int32(raw[i]) & 0x7F80) + 0x80
    bits = out.view(np.int32)
    for i in range(raw.shape[0]):
        bits[i] = np.int32(raw[i]) << 16
    if subtract:
        _subtract(out, base)
    return (special & 0x8000) == 0


@_jit
def narrow_bf16_if_finite(x: np.ndarray, out: np.ndarray) -> bool:
    """out (int16 bit patterns) ← bfloat16(x) for float32 `x`, rounded to nearest even as
    torch's `.bfloat16()`; False when a result is NaN/Inf (x non-finite, or rounded past
    bf16's largest value), the result then being unspecified there."""
    bits = x.view(np.uint32)
    special = 0
    for i in range(x.shape[0]):
        word = bits[i]
        rounded = (word + (((word >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF))) >> np.uint32(16)
        special |= (np.int32(rounded) & 0x7F80) + 0x80
        out[i] = np.int16(np.uint16(rounded))
    return (special & 0x8000) == 0
