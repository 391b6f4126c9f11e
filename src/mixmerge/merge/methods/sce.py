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
Memory: MergeKit stacks the task vectors and forms several T-stacked temporaries; here they are
formed in place of the loaded inputs and variance, sign election and sum run chunk by chunk (the
same per-entry arithmetic), so a merge holds the T + 1 inputs, the variance and the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, fused_kernels, register_method
from mixmerge.merge.methods.gta import CHUNK, fusable, fused_combine, get_mask, largest_mask


def sce_weight(ctx: TensorContext, tvs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each task vector's mean(δ²), normalised to sum 1 (uniform below a total of 1e-6).

    Each mean is one row reduction on one thread (`ctx.map`): the sums of MergeKit's stacked
    rows, in an order that does not depend on the number of cores."""
    means = ctx.map(lambda t: t.square().reshape(1, -1).mean(dim=1), tvs)
    weights = torch.cat(means)
    total = torch.sum(weights).item()
    if abs(total) < 1e-6:
        return torch.ones_like(weights) / weights.shape[0]
    return weights / total


def sce_mask(tvs: Sequence[torch.Tensor], density: float, mask_dtype: torch.dtype) -> torch.Tensor:
    """The entries kept in every (flat) task vector: the `density` share of highest variance."""
    if density <= 0:
        return torch.zeros_like(tvs[0], dtype=mask_dtype)
    if density >= 1:
        return torch.ones_like(tvs[0], dtype=mask_dtype)
    var = torch.empty_like(tvs[0])
    for s in range(0, var.numel(), CHUNK):  # the population variance over the models
        var[s : s + CHUNK] = torch.var(_rows(tvs, s), dim=0, unbiased=False)
    k = int(torch.count_nonzero(var) * density)
    if k == 0:
        return torch.zeros_like(var, dtype=mask_dtype)
    return largest_mask(var.abs(), k).to(mask_dtype)


def _rows(tvs: Sequence[torch.Tensor], s: int) -> torch.Tensor:
    """Entries [s, s + CHUNK) of every task vector, stacked (T × chunk)."""
    return torch.stack([t[s : s + CHUNK] for t in tvs])


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
        if not ctx.tensors:  # every model is the base
            return base
        mask_dtype = torch.int8 if ctx.params["int8_mask"] else base.dtype
        # task vectors in place of the inputs, and every step below by chunks: the merge
        # holds the loaded tensors, the variance and chunk-sized temporaries
        tvs = [t.reshape(-1) for t in ctx.task_vectors()]
        if ctx.params["select_topk"] < 1:
            mask = sce_mask(tvs, ctx.params["select_topk"], mask_dtype)
            for t in tvs:
                t.mul_(mask)
            del mask
        weights = sce_weight(ctx, tvs).unsqueeze(-1)
        out = ctx.mutable_base()
        flat_out = out.view(-1)
        if fusable(flat_out, weights, *tvs):
            # the loop below, entry by entry in one pass
            fused_combine(ctx, fused_kernels().sce_consensus, tvs, weights.view(-1).numpy(), flat_out)
            return out
        for s in range(0, flat_out.numel(), CHUNK):
            chunk = _rows(tvs, s)
            erased = weights * get_mask(chunk, "sum", mask_dtype)
            merged = (chunk * erased).sum(dim=0)
            flat_out[s : s + CHUNK] += merged / torch.sum(erased, dim=0).clamp(min=1e-6)
        return out
