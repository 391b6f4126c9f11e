"""Generalized task arithmetic (MergeKit merge_methods/generalized_task_arithmetic.py).

task_arithmetic, ties, dare_*, della*, breadcrumbs* are all this one pipeline:
  δ_i = θ_i − θ_base  →  sparsify(δ_i)  →  w_i·δ_i  →  optional sign consensus mask
  →  Σ (÷ Σ w_i [masked] if normalize)  →  × lambda  →  θ_base + mixed.
A concrete method subclasses `GeneralizedTaskArithmetic`, sets `consensus`, the defaults
and extra params, and overrides `sparsify` (random ones draw with `ctx.uniform(j, shape)`).

Memory: the task vectors are formed straight from the stored inputs (`ctx.task_vectors`,
never a converted copy of an input) and the weighted sum, sign election and normalisation run
chunk by chunk into the base tensor, so a merge needs the base and T task vectors plus
chunk-sized temporaries (and the sparsifier's own scratch, for
as many task vectors at once as the engine has CPU workers: `ctx.map` sparsifies them, and
then combines the chunks, in parallel, each op on one thread, so sums run in one order on any
machine).

Speed: on contiguous float CPU tensors the masks and the sign election run as fused loops
(`mixmerge.merge.kernels`, numba), bit for bit the torch form kept here for other devices and
dtypes (`fusable` picks).

The operations and their order follow MergeKit (same products, sums, divisor guards, rescale
epsilon), so results agree with MergeKit up to float rounding of sums. Differences, all
where MergeKit's behaviour is undefined or a crash:
- ties among equal magnitudes at the top-k / outlier cut are broken by position (lower flat
  index first) so results are deterministic; MergeKit's unstable argsort picks arbitrarily;
- `int8_mask` is accepted and has no numeric effect (masks are booleans here).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, fused_kernels

# Elements per piece of a whole-tensor pass (4 MiB of float32 per temporary).
CHUNK = 1 << 20
# Elements per chunk of the combine step (1 MiB of float32 per temporary: a worker's few
# temporaries stay in the cache across the step's passes).
COMBINE_CHUNK = 1 << 18
# MergeKit's rescaled_masked_tensor skips the rescale below this norm.
RESCALE_EPS = 1e-7


def get_mask(
    weighted_deltas: torch.Tensor, method: str = "sum", mask_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """TIES sign-consensus mask over dim 0 (MergeKit `get_mask`): 'sum' or 'count' election."""
    mask_dtype = weighted_deltas.dtype if mask_dtype is None else mask_dtype
    sign = weighted_deltas.sign().to(mask_dtype)
    if method == "sum":
        majority = (weighted_deltas.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
    elif method == "count":
        majority = (sign.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
    else:
        raise ValueError(f"unknown consensus method {method!r}")
    return sign == majority


def gta_global_params(
    default_normalize: bool, default_rescale: bool, rescale_modes: bool = False
) -> tuple[Param, ...]:
    """The global parameters MergeKit declares for every GTA method.

    `rescale_modes` adds `rescale_mode` (DARE/DELLA): `l1` (MergeKit's current rescale, the
    default) or `inverse_density` (the papers' and older MergeKit's 1/p rescale).
    """
    params = (
        Param("int8_mask", bool, default=False),
        Param("normalize", bool, default=default_normalize),
        Param("rescale", bool, default=default_rescale),
        Param("lambda", float, default=1.0),
    )
    if rescale_modes:
        params += (Param("rescale_mode", str, default="l1", choices=("l1", "inverse_density")),)
    return params


# --- rank masks (deterministic, stable tie-breaking) ----------------------------------------


# From this many entries on, the k-th value is first bracketed with a strided sample of
# _SAMPLE entries (three comparison passes); below, and where the bracket misses, float32 on
# CPU counts digits (the radix select) and other dtypes select on the whole tensor.
_SAMPLE = 1 << 16
BRACKET_MIN = 8 * _SAMPLE
# Below this many float32 entries introselect beats the two counting passes.
RADIX_MIN = 1 << 14
# which uint16 of a float32 holds its upper (sign, exponent, 7 mantissa bits) and lower half
_UPPER, _LOWER = (1, 0) if sys.byteorder == "little" else (0, 1)

Flat = np.ndarray | torch.Tensor


def fusable(*tensors: torch.Tensor) -> bool:
    """Whether the fused loops apply: contiguous float32/float64 CPU tensors of one dtype,
    which they read and write through numpy views."""
    return all(
        t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and t.dtype == tensors[0].dtype
        and t.is_contiguous()
        for t in tensors
    )


def _host(a: torch.Tensor) -> Flat:
    """Flat `a` as a numpy view where it lives on CPU in float32/64 (on one thread numpy's
    compares, counts and boolean indexing run 4-7x faster there than torch's), else `a`."""
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64):
        return (a if a.is_contiguous() else a.contiguous()).numpy().reshape(-1)
    return a


def _count(mask: Flat) -> int:
    if isinstance(mask, np.ndarray):
        return int(np.count_nonzero(mask))
    return int(torch.count_nonzero(mask))


def _kth_exact(x: Flat, k: int) -> Any:
    """The k-th smallest value (1-based) of flat `x`, exactly.

    numpy's introselect (`np.partition`, linear time), where torch.topk and kthvalue sort
    (value, index) pairs; on other devices a top-k of the smaller side."""
    if isinstance(x, np.ndarray):
        return np.partition(x, k - 1)[k - 1]
    n = x.numel()
    if k <= n - k + 1:
        return torch.topk(x, k, largest=False, sorted=False).values.max()
    return torch.topk(x, n - k + 1, largest=True, sorted=False).values.min()


def _digit_counts(digits: np.ndarray) -> np.ndarray:
    """How often each 16-bit value occurs; by pieces, since bincount widens its input to
    int64 (8 bytes an entry, a large tensor's worth of scratch otherwise)."""
    counts = np.zeros(1 << 16, dtype=np.int64)
    for s in range(0, len(digits), CHUNK):
        counts += np.bincount(digits[s : s + CHUNK], minlength=1 << 16)
    return counts


def _upper_counts(x: np.ndarray) -> np.ndarray | None:
    """How often each upper 16 bits occur among float32 `x`'s entries; None when one has
    the sign bit set. torch counts int16 in place (2x faster than numpy's bincount, which
    copies to int64); an upper half with the sign bit is a negative int16, which it rejects."""
    halves = torch.from_numpy(x).view(torch.int16)[_UPPER::2]
    try:
        return torch.bincount(halves, minlength=1 << 16).numpy()
    except RuntimeError:  # "bincount only supports 1-d non-negative integral inputs"
        return None


def upper_counts(a: torch.Tensor) -> np.ndarray | None:
    """The radix select's first counting pass over flat `a`, for `smallest_mask`; None where
    that select does not apply (not float32 on CPU, small, large enough for the bracket, or a
    negative entry)."""
    x = _host(a)
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        return None
    if not RADIX_MIN <= len(x) < BRACKET_MIN:
        return None
    return _upper_counts(x)


def _kth_radix(
    x: np.ndarray, k: int, counts: np.ndarray | None = None
) -> tuple[Any, int, int] | None:
    """The k-th smallest value (1-based) of float32 `x` by two 16-bit counting passes (a
    radix select: non-negative floats order as their bit patterns), with how many entries
    are below it and equal to it; None when `x` has an entry with the sign bit set (or
    inf/NaN). 2-3x faster than introselect here, and its time does not depend on the values
    (introselect slows down on the ties of bf16 deltas). `counts`: `_upper_counts(x)`, when
    several selections on one tensor share them."""
    counts = _upper_counts(x) if counts is None else counts
    if counts is None or counts[0x7F80:].any():  # sign bit, inf/NaN: bits don't order values
        return None
    upto = np.cumsum(counts)
    top = int(np.searchsorted(upto, k))  # the first upper half whose running count reaches k
    below = int(upto[top - 1]) if top else 0
    # that upper half's entries (compress: 5x faster than a boolean index on a random mask)
    bucket = np.compress(x.view(np.uint16)[_UPPER::2] == top, x)
    rest = np.cumsum(_digit_counts(bucket.view(np.uint16)[_LOWER::2]))
    bottom = int(np.searchsorted(rest, k - below))
    less = below + (int(rest[bottom - 1]) if bottom else 0)
    value = np.array([(top << 16) | bottom], dtype=np.uint32).view(np.float32)[0]
    return value, less, below + int(rest[bottom]) - less


def _bracket_bounds(strided: Flat, n: int, k: int) -> tuple[Any, Any, float]:
    """[lo, hi] holding the k-th smallest of n entries with near certainty, from a strided
    sample of them (its quantile ± 8 standard deviations and 64 entries), and the share of
    the sample inside."""
    sample = np.sort(strided) if isinstance(strided, np.ndarray) else torch.sort(strided).values
    m = len(sample)
    q = k / n
    margin = int(8 * math.sqrt(m * q * (1 - q))) + 64
    i = int(q * m)
    lo, hi = sample[max(i - margin, 0)], sample[min(i + margin, m - 1)]
    # the sampled share inside, ties included (a bf16-derived δ repeats values at the cut)
    if isinstance(sample, np.ndarray):
        span = np.searchsorted(sample, hi, "right") - np.searchsorted(sample, lo, "left")
    else:
        span = int(torch.searchsorted(sample, hi, right=True) - torch.searchsorted(sample, lo))
    return lo, hi, int(span) / m


def _kth_bracketed(x: Flat, k: int) -> tuple[Any, int, int] | None:
    """The k-th smallest value (1-based) of flat `x`, with the number of entries below it and
    equal to it, or None when the sample's bracket misses it.

    A fixed strided sample brackets the answer in [lo, hi]; one comparison pass counts the
    entries below lo, two more gather the few inside the bracket, and the exact selection and
    counts run on those. Linear, and 2-3x faster than the radix select's counting passes on
    float32."""
    lo, hi, _ = _bracket_bounds(x[:: len(x) // _SAMPLE], len(x), k)
    below = _count(x < lo)
    if below >= k:
        return None
    if isinstance(x, np.ndarray):
        inside = np.compress((x >= lo) & (x <= hi), x)  # compress: 5x a boolean index
    else:
        inside = x[(x >= lo) & (x <= hi)]
    if below + len(inside) < k:
        return None
    value = _kth_exact(inside, k - below)
    return value, below + _count(inside < value), _count(inside == value)


def _kth_bracketed_abs(x: np.ndarray, k: int) -> tuple[Any, int, int] | None:
    """`_kth_bracketed` of |x| without forming |x|: the count below the bracket and the
    gather inside it are one fused pass over x (`kernels.abs_bracket`)."""
    n = len(x)
    lo, hi, share = _bracket_bounds(np.abs(x[:: n // _SAMPLE]), n, k)
    inside = np.empty(int(2 * share * n) + 4096, dtype=x.dtype)
    below, n_inside = fused_kernels().abs_bracket(x, lo, hi, inside)
    if n_inside > len(inside):  # a value repeated far beyond the sample's share: one more pass
        inside = np.empty(n_inside, dtype=x.dtype)
        fused_kernels().abs_bracket(x, lo, hi, inside)
    if below >= k or below + n_inside < k:
        return None
    inside = inside[:n_inside]
    if lo == hi:  # one value fills the bracket (a bf16-derived δ's tie at the cut)
        return lo, below, n_inside
    value = _kth_exact(inside, k - below)
    return value, below + _count(inside < value), _count(inside == value)


def _kth_smallest_abs(x: np.ndarray, k: int) -> tuple[Any, int, int]:
    """The k-th smallest (1-based) of |x| for a float array x, with how many |x| are below it
    and equal to it; |x| is formed only where the fused bracket does not apply or misses."""
    if len(x) >= BRACKET_MIN:
        found = _kth_bracketed_abs(x, k)
        if found is not None:
            return found
    a = np.abs(x)
    value, less, equal = _kth_smallest(a, k)
    if less is None or equal is None:
        less, equal = _count(a < value), _count(a == value)
    return value, less, equal


def _kth_smallest(
    x: Flat, k: int, counts: np.ndarray | None = None
) -> tuple[Any, int | None, int | None]:
    """The k-th smallest value (1-based) of flat `x` (see `_host`), exactly, with the number
    of entries below it and equal to it where the selection counted them (else None).

    Large tensors: the sampled bracket. Where it does not apply or misses (a pathological
    layout), float32 on CPU takes the radix select, and other dtypes (or float32 with a
    negative entry) the exact selection on the whole tensor, so the value is always exact.
    """
    n = len(x)
    if n >= BRACKET_MIN:
        found = _kth_bracketed(x, k)
        if found is not None:
            return found
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and n >= RADIX_MIN:
        radix = _kth_radix(x, k, counts)
        if radix is not None:
            return radix
    return _kth_exact(x, k), None, None


def _first_equal(x: Flat, thr: Any, need: int, into: Flat) -> None:
    """Set `into` at the first `need` positions where x == thr, reading x only as far as
    they reach (piece by piece)."""
    for s in range(0, len(x), CHUNK):
        if isinstance(x, np.ndarray):
            found = np.flatnonzero(x[s : s + CHUNK] == thr)
        else:
            found = torch.nonzero(x[s : s + CHUNK] == thr).view(-1)
        into[s + found[:need]] = True
        need -= len(found)
        if need <= 0:
            return


def _stable_cut(
    x: Flat, k: int, beyond: Flat, thr: Any, n_beyond: int | None = None
) -> torch.Tensor:
    """`beyond` (the entries strictly past the threshold; `n_beyond` of them when known)
    plus the first entries equal to `thr`, by position, up to k in all: the first k of a
    stable sort, as a torch mask."""
    need = k - (_count(beyond) if n_beyond is None else n_beyond)
    if need > 0:
        _first_equal(x, thr, need, beyond)
    return torch.from_numpy(beyond) if isinstance(beyond, np.ndarray) else beyond


def by_row_rank(
    mag: torch.Tensor, table: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """`table[rank]` for each entry of the non-negative `mag` (rows × n), its rank within its
    row as in a stable ascending argsort (ties by position); `table` has n entries. Written
    into `out` (rows × n, table's dtype) when given.

    On CPU for float32 with n < 2¹⁶: one sort of unique int64 keys (the float's bits, which
    order non-negative floats, then the column), numpy's vectorised sort; the column of each
    sorted key is where that rank's value goes. Elsewhere torch's stable argsort."""
    rows, n = mag.shape
    if mag.device.type != "cpu" or mag.dtype != torch.float32 or n >= 1 << 16:
        order = torch.argsort(mag, dim=1, stable=True)
    else:
        keys = mag.contiguous().view(torch.int32).numpy().astype(np.int64) << 16
        keys |= np.arange(n, dtype=np.int64)
        keys.sort(axis=1)
        keys &= 0xFFFF
        order = torch.from_numpy(keys)
    if out is None:
        out = torch.empty((rows, n), dtype=table.dtype, device=mag.device)
    return out.scatter_(1, order.to(mag.device), table.expand(rows, n))


def smallest_mask(a: torch.Tensor, k: int, counts: np.ndarray | None = None) -> torch.Tensor:
    """Mask of the k entries of flat `a` first in a stable ascending sort (ties: lower index).
    `counts`: `upper_counts(a)`, to share between several masks of one tensor."""
    n = a.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=a.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=a.device)
    x = _host(a)
    thr, less, _ = _kth_smallest(x, k, counts)
    return _stable_cut(x, k, x < thr, thr, less)


def largest_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k entries of flat `a` first in a stable descending sort (ties: lower index)."""
    n = a.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=a.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=a.device)
    x = _host(a)
    thr, less, equal = _kth_smallest(x, n - k + 1)
    greater = None if less is None or equal is None else n - less - equal
    return _stable_cut(x, k, x > thr, thr, greater)


def zero_dropped(delta: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """δ where `keep`, +0.0 elsewhere, in place: `masked_fill(~keep, 0)` bit for bit.

    On CPU as an integer product of δ's bits with the 0/1 mask (5x faster than masked_fill
    there, which branches per entry; a float product would leave -0.0 for dropped negatives)."""
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}.get(delta.dtype)
    on_cpu = delta.device.type == "cpu" and keep.device.type == "cpu"
    if bits is not None and on_cpu and delta.is_contiguous():
        ints = delta.view(bits).numpy().reshape(-1)
        np.multiply(ints, keep.contiguous().numpy().reshape(-1), out=ints)
        return delta
    return delta.masked_fill_(keep.view(delta.shape).logical_not_(), 0)


def apply_mask(
    delta: torch.Tensor, keep: torch.Tensor, rescale: bool, l1_before: torch.Tensor | None = None
) -> torch.Tensor:
    """delta · keep (in place; `keep` is consumed), then MergeKit's L1 rescale
    `masked · ‖δ‖₁ / ‖masked‖₁` if asked (skipped when either norm is below 1e-7)."""
    if rescale and l1_before is None:
        l1_before = torch.linalg.vector_norm(delta, 1)
    zero_dropped(delta, keep)
    return rescale_l1(delta, l1_before) if rescale else delta


def rescale_l1(
    delta: torch.Tensor, l1_before: torch.Tensor | None, after: torch.Tensor | None = None
) -> torch.Tensor:
    """MergeKit's L1 rescale of a masked δ, in place: × ‖δ‖₁ / ‖masked‖₁ (`l1_before` = ‖δ‖₁,
    `after` = ‖masked‖₁ when already summed), skipped when either norm is below 1e-7."""
    assert l1_before is not None
    if after is None:
        after = torch.linalg.vector_norm(delta, 1)
    if l1_before >= RESCALE_EPS and after >= RESCALE_EPS:
        delta.mul_(l1_before / after)
    return delta


def _l1(delta: torch.Tensor, rescale: bool) -> torch.Tensor | None:
    # ‖δ‖₁ before masking; torch's reduction gives the same bits on δ and on |δ|
    return torch.linalg.vector_norm(delta, 1) if rescale else None


# --- sparsifiers (MergeKit sparsify.py) -----------------------------------------------------
# Each has a fused form (`kernels`) for contiguous float CPU tensors: the same mask, by the
# same selection, applied in one pass without forming |δ| or a boolean mask.


def magnitude(delta: torch.Tensor, density: float, rescale: bool) -> torch.Tensor:
    """Keep the int(density·N) largest |δ| (TIES). density ≥ 1 is a no-op.

    MergeKit asserts k > 0; here k = 0 (density·N < 1) drops the whole task vector.
    """
    if density >= 1:
        return delta
    n = delta.numel()
    k = int(density * n)
    if 0 < k < n and fusable(delta):
        l1_before = _l1(delta, rescale)
        x = delta.view(-1).numpy()
        thr, less, equal = _kth_smallest_abs(x, n - k + 1)
        fused_kernels().keep_largest(x, thr, k - (n - less - equal))
        return rescale_l1(delta, l1_before) if rescale else delta
    a = delta.abs().view(-1)
    keep = largest_mask(a, k)
    return apply_mask(delta, keep, rescale, _l1(delta, rescale))


def magnitude_outliers(
    delta: torch.Tensor, density: float, gamma: float, rescale: bool
) -> torch.Tensor:
    """Model Breadcrumbs: drop the int(gamma·N) largest |δ| and then the smallest ones so that
    int(density·N) remain (fewer large ones are dropped when both do not fit).

    MergeKit keeps `sorted[n_bot:-n_top]`, which is empty when n_top = 0 (e.g. gamma·N < 1
    on small tensors, or gamma = 0): the whole task vector is silently dropped. Here the
    intended slice `sorted[n_bot:N - n_top]` is kept, i.e. nothing is cut at the top.
    """
    if density >= 1:
        return delta
    n = delta.numel()
    target_n = int(density * n)
    n_top = int(gamma * n)
    n_bot = n - target_n - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    if n_top < n and n_bot < n and fusable(delta):
        l1_before = _l1(delta, rescale)
        x = delta.view(-1).numpy()
        # the first n − n_top of a stable ascending sort of |δ| stay, its first n_bot go
        top, top_need = x.dtype.type(np.inf), 0
        if n_top > 0:
            top, less, _ = _kth_smallest_abs(x, n - n_top)
            top_need = n - n_top - less
        bottom, bottom_need = x.dtype.type(-1), 0
        if n_bot > 0:
            bottom, less, _ = _kth_smallest_abs(x, n_bot)
            bottom_need = n_bot - less
        fused_kernels().keep_band(x, top, top_need, bottom, bottom_need)
        return rescale_l1(delta, l1_before) if rescale else delta
    a = delta.abs().view(-1)
    counts = upper_counts(a)  # both cuts select on the same counts
    keep = smallest_mask(a, n - n_top, counts)
    if n_bot > 0:
        keep &= ~smallest_mask(a, n_bot, counts)
    return apply_mask(delta, keep, rescale, _l1(delta, rescale))


def _drop_unless_below(
    ctx: TensorContext, j: int, delta: torch.Tensor, p: float | torch.Tensor, rescale: bool
) -> torch.Tensor:
    """δ where input j's uniform draws (`ctx.uniform(j, δ.shape)`) are below p (a scalar or
    a tensor of δ's shape), +0.0 elsewhere, in place, then the L1 rescale if asked. The
    fused loop draws the same stream itself, a block at a time, and stores no draws; on one
    intra-op thread (the engine's workers) its L1 norms are torch's there, bit for bit."""
    per_entry = isinstance(p, torch.Tensor)
    if not (fusable(delta) and (not per_entry or fusable(delta, p))):
        return apply_mask(delta, ctx.uniform(j, delta.shape) < p, rescale)
    # torch compares a tensor with a Python float in the tensor's dtype (float32), and a
    # float32 draw with a float64 p in float64
    probs = p.view(-1).numpy() if per_entry else np.array([p], dtype=np.float32)
    summed = rescale and delta.dtype == torch.float32 and torch.get_num_threads() == 1
    l1_before = None if summed else _l1(delta, rescale)
    x, seed = delta.view(-1).numpy(), ctx.stream_seed(j)
    before, after = fused_kernels().keep_below(x, seed, probs, per_entry)
    if summed:
        return rescale_l1(delta, torch.tensor(before), torch.tensor(after))
    return rescale_l1(delta, l1_before) if rescale else delta


def random_drop(
    ctx: TensorContext, j: int, delta: torch.Tensor, density: float, rescale: bool, mode: str
) -> torch.Tensor:
    """DARE: keep each entry with probability `density` (seeded per tensor and model).

    Rescale `l1` (MergeKit) restores ‖δ‖₁; `inverse_density` divides by density (DARE paper,
    MergeKit < 0.1). density ≤ 0 drops everything (MergeKit's 1/p rescale would give NaN).
    """
    if density >= 1:
        return delta
    if density <= 0:
        return delta.zero_()
    if rescale and mode == "inverse_density":
        return _drop_unless_below(ctx, j, delta, density, False).div_(density)
    return _drop_unless_below(ctx, j, delta, density, rescale)


def della_magprune(
    ctx: TensorContext,
    j: int,
    delta: torch.Tensor,
    density: float,
    epsilon: float,
    rescale: bool,
    mode: str,
) -> torch.Tensor:
    """DELLA MagPrune: rank |δ| along dim 1 (a 1-D tensor is one row), keep probability
    p = density − ε + 2ε·rank/(n − 1) (rank 0 = smallest), Bernoulli mask, rescale.

    Rescale `l1` (MergeKit) restores ‖δ‖₁; `inverse_density` divides each kept entry by its
    own keep probability p (the DELLA paper). Ties in |δ| are ranked by position. A row of a
    single entry (MergeKit: 0/0 → NaN → crash) gets p = density.
    """
    if density >= 1:
        return delta
    if density <= 0:
        return delta.zero_()
    t = delta.unsqueeze(0) if delta.dim() < 2 else delta
    rows = t.movedim(1, -1)
    ncols = rows.shape[-1]
    if delta.dim() <= 2 and 1 < ncols < 1 << 16 and fusable(delta) and delta.dtype == torch.float32:
        return _della_fused(ctx, j, delta, density, epsilon, rescale, mode)
    flat = rows.reshape(-1, ncols)
    probs = torch.empty(flat.shape, dtype=delta.dtype, device=delta.device)
    if ncols == 1:
        probs.fill_(density)
    else:
        by_rank = _della_table(ncols, density, epsilon, delta.dtype).to(delta.device)
        step = max(1, CHUNK // ncols)
        for s in range(0, flat.shape[0], step):
            by_row_rank(flat[s : s + step].abs(), by_rank, out=probs[s : s + step])
    probs = probs.reshape(rows.shape).movedim(-1, 1).reshape(delta.shape)
    if rescale and mode == "inverse_density":
        return _drop_unless_below(ctx, j, delta, probs, False).div_(probs)
    return _drop_unless_below(ctx, j, delta, probs, rescale)


def _della_table(ncols: int, density: float, epsilon: float, dtype: torch.dtype) -> torch.Tensor:
    """The keep probability of each rank: MergeKit's (density − ε) + rank_norm · 2 · ε with
    rank_norm = rank / (n − 1), the same ops in the same dtype, once per rank."""
    rank_norm = torch.arange(ncols).to(dtype).div_(ncols - 1)
    return rank_norm.mul_(2).mul_(epsilon).add_(density - epsilon)


def _della_fused(
    ctx: TensorContext,
    j: int,
    delta: torch.Tensor,
    density: float,
    epsilon: float,
    rescale: bool,
    mode: str,
) -> torch.Tensor:
    """`della_magprune` on a contiguous float32 CPU vector or matrix (rows of n < 2¹⁶), its
    torch form's bits. The mask alone (`l1` rescale, or none): each row's ranks bounded by
    a histogram, exact only where a draw falls inside an entry's bounds
    (`kernels.bucketed_keep_below`). `inverse_density`, which divides every kept entry by
    its own p: rank keys and the drop in fused loops, a row block at a time, and numpy's
    sort of each row's keys between them."""
    kernels = fused_kernels()
    x = delta.view(-1, delta.shape[-1]).numpy()
    table = _della_table(x.shape[1], density, epsilon, delta.dtype).numpy()
    stream = kernels.mt_stream(ctx.stream_seed(j))
    divide = rescale and mode == "inverse_density"
    summed = rescale and not divide and torch.get_num_threads() == 1
    l1_before = _l1(delta, rescale and not divide and not summed)
    sums = np.zeros(2, dtype=np.float32)
    if divide:  # every kept entry is divided by its own p: each needs its exact rank
        step = max(1, CHUNK // x.shape[1])
        keys = np.empty((min(step, x.shape[0]), x.shape[1]), dtype=np.int64)
        for s in range(0, x.shape[0], step):
            block = x[s : s + step]
            block_keys = keys[: block.shape[0]]
            kernels.row_rank_keys(block, block_keys)
            block_keys.sort(axis=1)
            kernels.ranked_keep_below(block, block_keys, table, stream, divide, sums)
    else:  # the mask alone: ranks bounded by a histogram, exact only where that is not enough
        kernels.bucketed_keep_below(x, table, stream, sums)
    if not rescale or divide:
        return delta
    if summed:
        return rescale_l1(delta, torch.tensor(sums[0]), torch.tensor(sums[1]))
    return rescale_l1(delta, l1_before)


def fused_combine(
    ctx: TensorContext,
    kernel: Any,
    deltas: Sequence[torch.Tensor],
    weights: np.ndarray,
    flat_out: torch.Tensor,
    *options: Any,
) -> None:
    """`kernel(deltas' chunks, weights, out chunk, *options)` on COMBINE_CHUNK slices of the
    flat output, spread over the workers (the fused combine steps of TIES and SCE)."""

    def piece(s: int) -> None:
        chunks = tuple(d[s : s + COMBINE_CHUNK].numpy() for d in deltas)
        kernel(chunks, weights, flat_out[s : s + COMBINE_CHUNK].numpy(), *options)

    ctx.map(piece, range(0, flat_out.numel(), COMBINE_CHUNK))


# --- the pipeline ---------------------------------------------------------------------------


class GeneralizedTaskArithmetic(MergeMethod):
    needs_base = True
    consensus: ClassVar[str | None] = None  # None or "sum" (MergeKit's registry uses no "count")
    global_params = gta_global_params(default_normalize=False, default_rescale=False)
    # MergeKit declares density for every GTA method (default 1.0 = keep all).
    model_params = (
        Param("weight", float),
        Param("density", float, default=1.0, low=0.0, high=1.0),
    )

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        """Sparsify task vector j (default: keep it whole); may modify `delta` in place.

        Every MergeKit sparsifier is the identity at density ≥ 1 (see `elementwise`).
        """
        return delta

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        # Sign election, weighting and normalisation are per entry; sparsification is not.
        no_sparsify = type(self).sparsify is GeneralizedTaskArithmetic.sparsify
        return no_sparsify or all(p["density"] >= 1 for p in model_params)

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base = ctx.base
        assert base is not None  # guaranteed by needs_base
        if not ctx.tensors:
            return base

        formed: list[torch.Tensor | None] = list(ctx.task_vectors())

        def task_vector(j: int) -> torch.Tensor:
            delta, formed[j] = formed[j], None  # a sparsifier's new tensor frees the old one
            assert delta is not None
            return self.sparsify(ctx, j, delta).reshape(-1)

        # the task vectors are independent (each its own buffer and random stream)
        deltas = ctx.map(task_vector, range(len(formed)))
        # MergeKit builds the weights as a tensor of the deltas' dtype: use those values.
        w32 = torch.tensor([p["weight"] for p in ctx.model_params], dtype=base.dtype)
        weights = [float(w) for w in w32]
        normalize, lam = ctx.params["normalize"], ctx.params["lambda"]
        out = ctx.mutable_base()
        flat_out = out.view(-1)
        divisor = 1.0
        if not self.consensus and normalize:
            total = float(w32.sum())
            divisor = 1.0 if abs(total) < 1e-8 else total

        one = torch.ones((), dtype=base.dtype, device=base.device)
        if self.consensus and fusable(out, *deltas):
            # the torch form below, in one pass (kernels.py)
            kernel = fused_kernels().sign_consensus
            fused_combine(ctx, kernel, deltas, w32.numpy(), flat_out, normalize, lam)
            return out

        def combine(s: int) -> None:
            # the deltas are this method's own buffers: weight them in place (x·1 is x)
            wd = [d[s : s + COMBINE_CHUNK] for d in deltas]
            for x, w in zip(wd, weights, strict=True):
                if w != 1:
                    x.mul_(w)
            if self.consensus:  # a new sum: the deltas stay for the election
                mixed = torch.add(wd[0], wd[1]) if len(wd) > 1 else wd[0].clone()
                rest = wd[2:]
            else:
                mixed, rest = wd[0], wd[1:]
            for x in rest:
                mixed += x
            if self.consensus:  # TIES "sum" election: majority sign of Σ w_i δ_i
                # ±1 (+1 for a sum ≥ 0; a sum of -0.0 has only zero terms, so either sign
                # gives the same +0.0); x agrees when x·sign > 0 (a zero entry agrees with
                # neither sign). Adding x·agree (x or ±0) and w·agree leaves every sum as
                # adding only the agreeing entries would (float ops only: torch's where and
                # bool products are 5x slower on CPU)
                sign = torch.copysign(one, mixed)
                mixed.zero_()
                div = torch.zeros_like(mixed) if normalize else None
                agree = torch.empty_like(mixed)
                for x, w in zip(wd, weights, strict=True):
                    torch.mul(x, sign, out=agree).gt_(0)  # 1.0 / 0.0
                    mixed.addcmul_(x, agree)
                    if div is not None:
                        div.add_(agree, alpha=w)
                if div is not None:
                    div += div == 0  # MergeKit's divisor[divisor == 0] = 1, without indexing
                    mixed /= div
            elif normalize:
                mixed /= divisor
            if lam != 1:
                mixed *= lam
            flat_out[s : s + COMBINE_CHUNK] += mixed

        ctx.map(combine, range(0, flat_out.numel(), COMBINE_CHUNK))  # disjoint slices of the output
        return out
