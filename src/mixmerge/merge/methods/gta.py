"""Generalized task arithmetic (MergeKit merge_methods/generalized_task_arithmetic.py).

task_arithmetic, ties, dare_*, della*, breadcrumbs* are all this one pipeline:
  δ_i = θ_i − θ_base  →  sparsify(δ_i)  →  w_i·δ_i  →  optional sign consensus mask
  →  Σ (÷ Σ w_i [masked] if normalize)  →  × lambda  →  θ_base + mixed.
A concrete method subclasses `GeneralizedTaskArithmetic`, sets `consensus`, the defaults
and extra params, and overrides `sparsify` (random ones draw with `ctx.uniform(j, shape)`).

Memory: the task vectors are formed in place of the loaded inputs and the weighted sum,
sign election and normalisation run chunk by chunk into the base tensor, so a merge needs
the (T + 1) loaded tensors plus chunk-sized temporaries (and the sparsifier's own scratch).

The operations and their order follow MergeKit (same products, sums, divisor guards, rescale
epsilon), so results agree with MergeKit up to float rounding of sums. Differences, all
where MergeKit's behaviour is undefined or a crash:
- ties among equal magnitudes at the top-k / outlier cut are broken by position (lower flat
  index first) so results are deterministic; MergeKit's unstable argsort picks arbitrarily;
- `int8_mask` is accepted and has no numeric effect (masks are booleans here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext

# Elements per chunk of the streamed combine step (4 MiB of float32 per temporary).
CHUNK = 1 << 20
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


# Above this many entries the k-th value is found by bracketing it with a strided sample (on
# 2.9M float32 entries 16 ms here, against 24 ms for numpy's introselect and 72 ms for topk).
SELECT_EXACT_MAX = 1 << 20
_SAMPLE = 1 << 16


def _numpy_selects(a: torch.Tensor) -> bool:
    return a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64)


def _kth_exact(a: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value (1-based) of flat `a`, exactly.

    On CPU: numpy's introselect (`np.partition`, linear time), where torch.topk and kthvalue
    sort (value, index) pairs. Elsewhere a top-k of the smaller side."""
    n = a.numel()
    if _numpy_selects(a):
        values = a.numpy() if a.is_contiguous() else a.contiguous().numpy()
        return torch.tensor(np.partition(values, k - 1)[k - 1], dtype=a.dtype)
    if k <= n - k + 1:
        return torch.topk(a, k, largest=False, sorted=False).values.max()
    return torch.topk(a, n - k + 1, largest=True, sorted=False).values.min()


def _kth_smallest(a: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value (1-based) of flat `a`, exactly.

    On a large tensor a fixed strided sample brackets the answer in [lo, hi]; two
    comparison passes count the entries below lo and gather the few inside the bracket, and
    the exact selection runs on those. If the bracket misses (a pathological layout) the
    full selection is used, so the value is always exact.
    """
    n = a.numel()
    if n <= SELECT_EXACT_MAX:
        return _kth_exact(a, k)
    sample = torch.sort(a[:: n // _SAMPLE]).values
    m = sample.numel()
    q = k / n
    margin = int(8 * math.sqrt(m * q * (1 - q))) + 64
    i = int(q * m)
    lo, hi = sample[max(i - margin, 0)], sample[min(i + margin, m - 1)]
    below = int(torch.count_nonzero(a < lo))
    if below < k:
        inside = a[(a >= lo) & (a <= hi)]
        if below + inside.numel() >= k:
            return _kth_exact(inside, k - below)
    return _kth_exact(a, k)


def row_ranks(mag: torch.Tensor) -> torch.Tensor:
    """Each entry's 0-based rank within its row of the non-negative float32 `mag` (rows × n),
    ties by position: the ranks of a stable ascending argsort.

    On CPU with n < 2¹⁶: one sort of unique int64 keys (the float's bits, which order
    non-negative floats, then the column), numpy's vectorised sort; the column of each sorted
    key is where its rank goes. Elsewhere torch's stable argsort."""
    rows, n = mag.shape
    if mag.device.type != "cpu" or mag.dtype != torch.float32 or n >= 1 << 16:
        order = torch.argsort(mag, dim=1, stable=True)
        ranks = torch.empty_like(order)
        return ranks.scatter_(1, order, torch.arange(n, device=mag.device).expand_as(order))
    keys = mag.contiguous().view(torch.int32).numpy().astype(np.int64) << 16
    keys |= np.arange(n, dtype=np.int64)
    keys.sort(axis=1)
    ranks = np.empty((rows, n), dtype=np.int64)
    np.put_along_axis(ranks, keys & 0xFFFF, np.arange(n, dtype=np.int64)[None, :], axis=1)
    return torch.from_numpy(ranks)


def smallest_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k entries of flat `a` first in a stable ascending sort (ties: lower index)."""
    n = a.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=a.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=a.device)
    thr = _kth_smallest(a, k)
    keep = a < thr
    need = k - int(torch.count_nonzero(keep))
    if need > 0:
        keep[torch.nonzero(a == thr).view(-1)[:need]] = True
    return keep


def largest_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k entries of flat `a` first in a stable descending sort (ties: lower index)."""
    n = a.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=a.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=a.device)
    thr = _kth_smallest(a, n - k + 1)
    keep = a > thr
    need = k - int(torch.count_nonzero(keep))
    if need > 0:
        keep[torch.nonzero(a == thr).view(-1)[:need]] = True
    return keep


def apply_mask(
    delta: torch.Tensor, keep: torch.Tensor, rescale: bool, l1_before: torch.Tensor | None = None
) -> torch.Tensor:
    """delta · keep (in place; `keep` is consumed), then MergeKit's L1 rescale
    `masked · ‖δ‖₁ / ‖masked‖₁` if asked (skipped when either norm is below 1e-7)."""
    if rescale and l1_before is None:
        l1_before = torch.linalg.vector_norm(delta, 1)
    delta.masked_fill_(keep.view(delta.shape).logical_not_(), 0)
    if rescale:
        assert l1_before is not None
        after = torch.linalg.vector_norm(delta, 1)
        if l1_before >= RESCALE_EPS and after >= RESCALE_EPS:
            delta.mul_(l1_before / after)
    return delta


# --- sparsifiers (MergeKit sparsify.py) -----------------------------------------------------


def magnitude(delta: torch.Tensor, density: float, rescale: bool) -> torch.Tensor:
    """Keep the int(density·N) largest |δ| (TIES). density ≥ 1 is a no-op.

    MergeKit asserts k > 0; here k = 0 (density·N < 1) drops the whole task vector.
    """
    if density >= 1:
        return delta
    a = delta.abs().view(-1)
    keep = largest_mask(a, int(density * delta.numel()))
    return apply_mask(delta, keep, rescale, torch.linalg.vector_norm(a, 1) if rescale else None)


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
    a = delta.abs().view(-1)
    keep = smallest_mask(a, n - n_top)
    if n_bot > 0:
        keep &= ~smallest_mask(a, n_bot)
    return apply_mask(delta, keep, rescale, torch.linalg.vector_norm(a, 1) if rescale else None)


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
    keep = ctx.uniform(j, delta.shape) < density
    if rescale and mode == "inverse_density":
        return apply_mask(delta, keep, False).div_(density)
    return apply_mask(delta, keep, rescale)


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
    flat = rows.reshape(-1, ncols)
    probs = torch.empty(flat.shape, dtype=delta.dtype, device=delta.device)
    if ncols == 1:
        probs.fill_(density)
    else:
        step = max(1, CHUNK // ncols)
        for s in range(0, flat.shape[0], step):
            ranks = row_ranks(flat[s : s + step].abs())
            # MergeKit: (density − ε) + rank_norm · 2 · ε, rank_norm = rank / (n − 1)
            rank_norm = ranks.to(delta.dtype).div_(ncols - 1)
            probs[s : s + step] = rank_norm.mul_(2).mul_(epsilon).add_(density - epsilon)
    probs = probs.reshape(rows.shape).movedim(-1, 1).reshape(delta.shape)
    keep = ctx.uniform(j, delta.shape) < probs
    if rescale and mode == "inverse_density":
        return apply_mask(delta, keep, False).div_(probs)
    return apply_mask(delta, keep, rescale)


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
        deltas = []
        for j in range(len(ctx.tensors)):
            d = ctx.mutable(j).sub_(base)
            deltas.append(self.sparsify(ctx, j, d).reshape(-1))
        # MergeKit builds the weights as a tensor of the deltas' dtype: use those values.
        w32 = torch.tensor([p["weight"] for p in ctx.model_params], dtype=base.dtype)
        weights = [float(w) for w in w32]
        normalize, lam = ctx.params["normalize"], ctx.params["lambda"]
        out = ctx.mutable_base()
        flat_out = out.view(-1)
        if not self.consensus and normalize:
            divisor = w32.sum()
            divisor = float(1.0 if abs(divisor) < 1e-8 else divisor)
        for s in range(0, flat_out.numel(), CHUNK):
            # the deltas are this method's own buffers: weight them in place
            wd = [d[s : s + CHUNK].mul_(w) for d, w in zip(deltas, weights, strict=True)]
            mixed = wd[0].clone() if self.consensus else wd[0]
            for x in wd[1:]:
                mixed += x
            if self.consensus:  # TIES "sum" election: majority sign of Σ w_i δ_i
                positive = mixed >= 0
                mixed.zero_()
                div = torch.zeros_like(mixed) if normalize else None
                for x, w in zip(wd, weights, strict=True):
                    # sign(x) == majority; a zero entry agrees with neither sign
                    agree = torch.where(positive, x > 0, x < 0)
                    mixed += x * agree
                    if div is not None:
                        div += agree * w
                if div is not None:
                    div[div == 0] = 1
                    mixed /= div
            elif normalize:
                mixed /= divisor
            if lam != 1:
                mixed *= lam
            flat_out[s : s + CHUNK] += mixed
        return out
