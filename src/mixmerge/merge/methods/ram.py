"""`ram` and `ramplus_tl`: Reinforced Agent Merging, for sparse RL task vectors, as MergeKit 0.1.5
merge_methods/ram.py.

Task vectors δᵢ = θᵢ − base; an entry contributes where |δᵢ| > `epsilon`. Per entry, the
contributing models are counted: an entry only one model changed takes that model's value, an
entry several changed takes their mean. `ram` is elementwise (streamed). `ramplus_tl` scales the
unique entries of model i by λᵢ = 1 + r·clamp(ρᵢ, 0, α), with ρᵢ = (its shared entries) / (its
unique entries, at least epsilon), counted over the tensor (tensor-local).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


def _prepare(ctx: TensorContext, epsilon: float) -> tuple[torch.Tensor, ...]:
    """MergeKit's `_prepare_ram_vectors`: flat task vectors, the contributing entries, their
    counts and the overlap / unique masks."""
    base = ctx.base
    assert base is not None
    tv_flat = torch.stack([t - base for t in ctx.tensors], dim=0).view(len(ctx.tensors), -1)
    nonzero = tv_flat.abs() > epsilon
    counts = nonzero.sum(dim=0, keepdim=True)
    return tv_flat, nonzero, counts, counts > 1, counts == 1


@register_method
class RamMerge(MergeMethod):
    name = "ram"
    pretty_name = "Reinforced Agent Merging"
    reference_url = "https://arxiv.org/abs/2601.13572"
    needs_base = True
    global_params = (Param("epsilon", float, default=1e-5, low=0.0),)
    model_params = ()

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        return True

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        tv_flat, nonzero, counts, overlap, unique = _prepare(ctx, ctx.params["epsilon"])
        tv = tv_flat * nonzero
        merged = ((tv * unique) + (tv * overlap / counts.clamp(min=1))).sum(dim=0, keepdim=True)
        assert ctx.base is not None
        return ctx.base + merged.reshape_as(ctx.base)


@register_method
class RamPlusTensorLocalMerge(MergeMethod):
    name = "ramplus_tl"
    pretty_name = "Reinforced Agent Merging Plus (Tensor-Local)"
    reference_url = "https://arxiv.org/abs/2601.13572"
    needs_base = True
    global_params = (
        Param("r", float, default=0.1),
        Param("alpha", float, default=0.2),
        Param("epsilon", float, default=1e-5, low=0.0),
    )
    model_params = ()

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        epsilon = ctx.params["epsilon"]
        tv_flat, nonzero, counts, overlap, unique = _prepare(ctx, epsilon)
        shared = (nonzero & overlap).sum(dim=1)
        alone = (nonzero & unique).sum(dim=1)
        rho = shared / alone.clamp(min=epsilon)
        lam = 1 + ctx.params["r"] * rho.clamp(min=0, max=ctx.params["alpha"])
        tv = tv_flat * nonzero
        merged = ((tv * unique * lam.unsqueeze(-1)) + (tv * overlap / counts.clamp(min=1))).sum(
            dim=0, keepdim=True
        )
        assert ctx.base is not None
        return ctx.base + merged.reshape_as(ctx.base)
