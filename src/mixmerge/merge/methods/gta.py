"""Generalized task arithmetic (MergeKit merge_methods/generalized_task_arithmetic.py).

task_arithmetic, ties, dare_*, della*, breadcrumbs* are all this one pipeline:
  δ_i = θ_i − θ_base  →  sparsify(δ_i)  →  w_i·δ_i  →  optional sign consensus mask
  →  Σ (÷ Σ w_i [masked] if normalize)  →  × lambda  →  θ_base + mixed.
A concrete method subclasses `GeneralizedTaskArithmetic`, sets `consensus`, the defaults
and extra params, and overrides `sparsify` (it may use `ctx.bernoulli(j, probs)`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext


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


def gta_global_params(default_normalize: bool, default_rescale: bool) -> tuple[Param, ...]:
    """The global parameters MergeKit declares for every GTA method."""
    return (
        Param("int8_mask", bool, default=False),
        Param("normalize", bool, default=default_normalize),
        Param("rescale", bool, default=default_rescale),
        Param("lambda", float, default=1.0),
    )


class GeneralizedTaskArithmetic(MergeMethod):
    needs_base = True
    consensus: ClassVar[str | None] = None  # None, "sum" or "count"
    global_params = gta_global_params(default_normalize=False, default_rescale=False)
    # MergeKit declares density for every GTA method (default 1.0 = keep all).
    model_params = (
        Param("weight", float),
        Param("density", float, default=1.0, low=0.0, high=1.0),
    )

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        """Sparsify task vector j (default: keep it whole)."""
        return delta

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base = ctx.base
        assert base is not None  # guaranteed by needs_base
        if not ctx.tensors:
            return base
        deltas = torch.stack(
            [self.sparsify(ctx, j, x - base) for j, x in enumerate(ctx.tensors)], dim=0
        )
        weights = ctx.weights()
        weighted = deltas * weights
        if self.consensus:
            mask_dtype = torch.int8 if ctx.params["int8_mask"] else base.dtype
            mask = get_mask(weighted, self.consensus, mask_dtype)
            mixed = (weighted * mask).sum(dim=0)
            divisor = (weights * mask).sum(dim=0)
            divisor[divisor == 0] = 1
        else:
            mixed = weighted.sum(dim=0)
            divisor = weights.sum(dim=0)
            divisor[divisor.abs() < 1e-8] = 1
        if ctx.params["normalize"]:
            mixed = mixed / divisor
        if ctx.params["lambda"] != 1:
            mixed = mixed * ctx.params["lambda"]
        return base + mixed
