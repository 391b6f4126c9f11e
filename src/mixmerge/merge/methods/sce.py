"""`sce`: Select, Calculate, Erase (FuseChat, Wan et al. 2024), as MergeKit 0.1.5
merge_methods/sce.py.

Task vectors δᵢ = θᵢ − base. Select: with `select_topk` < 1, keep the entries whose variance
across the models (population variance) is among the top `select_topk` share of the entries of
non-zero variance, in every task vector. Calculate: model i weighs mean(δᵢ²) over the tensor,
normalised to sum 1 (uniform when the sum is below 1e-6). Erase: TIES's sign election by sum
drops the entries whose sign disagrees with the elected one. The result is base + Σ wᵢ·mᵢ·δᵢ /
max(Σ wᵢ·mᵢ, 1e-6).
Deviation: among entries of equal variance at the cut, MergeKit's torch.topk picks in an
unspecified order; here the lower index goes first (as the other selections of this package), so
results are reproducible on every device.
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method
from mixmerge.merge.methods.gta import get_mask, largest_mask


def sce_weight(tvs: torch.Tensor) -> torch.Tensor:
    weights = tvs.square().reshape(tvs.shape[0], -1).mean(dim=1)
    total = torch.sum(weights).item()
    if abs(total) < 1e-6:
        return torch.ones_like(weights) / weights.shape[0]
    return weights / total


def sce_mask(tvs: torch.Tensor, density: float, mask_dtype: torch.dtype) -> torch.Tensor:
    """The entries kept in every task vector: the `density` share of highest variance."""
    if density <= 0:
        return torch.zeros_like(tvs[0], dtype=mask_dtype)
    if density >= 1:
        return torch.ones_like(tvs[0], dtype=mask_dtype)
    var = torch.var(tvs, dim=0, unbiased=False)
    k = int(torch.count_nonzero(var) * density)
    if k == 0:
        return torch.zeros_like(var, dtype=mask_dtype)
    return largest_mask(var.abs().reshape(-1), k).reshape(var.shape).to(mask_dtype)


@register_method
class SceMerge(MergeMethod):
    name = "sce"
    pretty_name = "SCE"
    reference_url = "https://arxiv.org/abs/2408.07990"
    needs_base = True
    global_params = (
        Param("int8_mask", bool, default=False),
        Param("select_topk", float, default=1.0),
    )
    model_params = ()

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base = ctx.base
        assert base is not None
        mask_dtype = torch.int8 if ctx.params["int8_mask"] else base.dtype
        tvs = torch.stack([t - base for t in ctx.tensors], dim=0)
        if ctx.params["select_topk"] < 1:
            tvs = tvs * sce_mask(tvs, ctx.params["select_topk"], mask_dtype).unsqueeze(0)
        erase = get_mask(tvs, "sum", mask_dtype)
        weights = sce_weight(tvs)
        while weights.dim() < tvs.dim():
            weights = weights.unsqueeze(-1)
        erased = weights * erase
        merged = (tvs * erased).sum(dim=0)
        return base + merged / torch.sum(erased, dim=0).clamp(min=1e-6)
