"""`r_tsvm`: Reweighting-enhanced TSV merging (Yang et al. 2025, "Mix Data or Merge Models?").

The paper's Algorithm 1; its authors released no code, so this resolution of it is the spec.
Per tensor, with δᵢ = θᵢ − θ₀ for T models:

(a) outlier weights. Per row of δᵢ (dim 0; a 1-D tensor is one row, higher-rank tensors are
    flattened after dim 0): μ = mean|δ|, σ = std|δ| (population; = sqrt(max(0, mean δ² − μ²)),
    computed two-pass), and Tᵢ = Σ|δ| over the entries with |δ| ≥ μ + k_sigma·σ, summed over
    rows. αᵢ = Tᵢ / Σⱼ Tⱼ (1/T when every Tᵢ is 0).
    `weighting: outlier` (default) | `uniform` (αᵢ = 1/T, the paper's "w/o outlier weighting")
    | `none` (αᵢ = 1, other tensors averaged: exactly TSVM's scaling).
(b) sparsity-adaptive rank. Ω = fraction of the entries of all δᵢ with |δ| < ε_abs, where
    `epsilon_mode: relative` (default) takes ε_abs = epsilon · mean over i of mean|δᵢ| and
    `absolute` takes ε_abs = epsilon (the paper: 0.1, which makes Ω ≈ 1 for small DPO
    deltas); rank k_l = max(⌊r·(1 − gamma·Ω)⌋, 1). `rank_selection: false` (the paper's
    "w/o rank selection") gives k_l = r.
(c) candidates as TSVM (k0 = ⌊r/T⌋ leading components per task), orthogonalized first (polar
    factors of the concatenated U and V blocks);
(d) reweighting σ̃ᵢⱼ = αᵢ·sᵢⱼ;
(e) keep the K = min(k_l, T·k0) largest σ̃ (stable order on ties, then in candidate order):
    M = U⊥[:, keep] diag(σ̃_keep) V⊥[:, keep]ᵀ.
Tensors that are not 2-D (or are excluded): M = Σ αᵢ δᵢ (the mean for `weighting: none`).
Output θ₀ + scale·M.

Identity: `weighting: none`, `rank_selection: false`, `scale: a` is TSVM with `alpha: a`
(same code path, byte-identical output).
"""

from __future__ import annotations

import math

import torch

from mixmerge.merge.base import PIECE, Param, TensorContext, register_method
from mixmerge.merge.methods.tsvm import SVD_PARAMS, TSVMerge, tsv_components


def outlier_mass(delta: torch.Tensor, k_sigma: float) -> float:
    """Tᵢ: Σ|δ| over entries at least k_sigma row-standard-deviations above the row mean |δ|
    (by blocks of rows, each row's statistics within its block: block-sized temporaries)."""
    rows = delta.reshape(delta.shape[0], -1) if delta.dim() >= 2 else delta.reshape(1, -1)
    step = max(1, PIECE // max(1, rows.shape[1]))
    total = 0.0
    for s in range(0, rows.shape[0], step):
        a = rows[s : s + step].abs().to(torch.float32)
        sigma, mu = torch.std_mean(a, dim=1, correction=0, keepdim=True)
        threshold = mu + k_sigma * sigma
        total += float(torch.where(a >= threshold, a, 0).sum(dtype=torch.float64))
    return total


def task_weights(ctx: TensorContext, deltas: list[torch.Tensor]) -> list[float] | None:
    """αᵢ per `weighting`; None for `none` (αᵢ = 1 on matrices, mean elsewhere)."""
    mode = ctx.params["weighting"]
    n = len(deltas)
    if mode == "none":
        return None
    if mode == "uniform":
        return [1.0 / n] * n
    masses = [outlier_mass(d, ctx.params["k_sigma"]) for d in deltas]
    total = sum(masses)
    return [m / total for m in masses] if total > 0 else [1.0 / n] * n


def sparsity(ctx: TensorContext, deltas: list[torch.Tensor]) -> float:
    """Ω: fraction of all task-vector entries with |δ| < ε_abs."""
    eps = ctx.params["epsilon"]
    flat = [d.reshape(-1) for d in deltas]  # one shape: the base's
    n, t = flat[0].numel(), len(flat)
    if ctx.params["epsilon_mode"] == "relative":
        sums = ctx.piece_sums(
            lambda s, e: [float(d[s:e].abs().to(torch.float32).sum(dtype=torch.float64)) for d in flat],
            n,
            t,
        )
        mean_abs = [float(x) / n for x in sums]
        eps *= sum(mean_abs) / t
    small = ctx.piece_sums(
        lambda s, e: [sum(int(torch.count_nonzero(d[s:e].abs() < eps)) for d in flat)], n, 1, torch.int64
    )
    return int(small[0]) / (n * t)


def selected_rank(r: int, gamma: float, omega: float) -> int:
    """k_l = max(⌊r·(1 − gamma·Ω)⌋, 1)."""
    return max(math.floor(r * (1.0 - gamma * omega)), 1)


@register_method
class RTSVMerge(TSVMerge):
    name = "r_tsvm"
    pretty_name = "R-TSVM"
    reference_url = "https://arxiv.org/abs/2502.06876"
    global_params = (
        Param("scale", float, default=1.0),
        Param("weighting", str, default="outlier", choices=("outlier", "uniform", "none")),
        Param("rank_selection", bool, default=True),
        Param("gamma", float, default=1.0, low=0.0),
        Param("epsilon", float, default=0.1, low=0.0),
        Param("epsilon_mode", str, default="relative", choices=("relative", "absolute")),
        Param("k_sigma", float, default=3.0, low=0.0),
        *SVD_PARAMS,
    )
    scale_param = "scale"

    def matrix_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        m, n = deltas[0].shape
        r, t = min(m, n), len(deltas)
        k0 = r // t
        if k0 == 0:
            return torch.zeros(m, n, dtype=torch.float32, device=ctx.device)
        alphas = task_weights(ctx, deltas)
        keep_rank = t * k0
        if ctx.params["rank_selection"]:
            keep_rank = min(selected_rank(r, ctx.params["gamma"], sparsity(ctx, deltas)), t * k0)
        u_perp, s, vh_perp = tsv_components(ctx, deltas, k0)
        if alphas is not None:
            s = s * torch.tensor(alphas, dtype=s.dtype, device=s.device).repeat_interleave(k0)
        if keep_rank < t * k0:
            order = torch.sort(s, descending=True, stable=True).indices
            keep = torch.sort(order[:keep_rank]).values
            u_perp, s, vh_perp = u_perp[:, keep], s[keep], vh_perp[keep]
        return (u_perp * s) @ vh_perp

    def other_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        alphas = task_weights(ctx, deltas)
        if alphas is None:
            return super().other_update(ctx, deltas)
        total = deltas[0] * alphas[0]
        for d, a in zip(deltas[1:], alphas[1:], strict=True):
            total += d * a
        return total
