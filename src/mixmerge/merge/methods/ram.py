"""`ram` and `ramplus_tl`: Reinforced Agent Merging, for sparse RL task vectors, as MergeKit 0.1.5
merge_methods/ram.py.

Task vectors δᵢ = θᵢ − base; an entry contributes where |δᵢ| > `epsilon`. Per entry, the
contributing models are counted: an entry only one model changed takes that model's value, an
entry several changed takes their mean. `ram` is elementwise (streamed). `ramplus_tl` scales the
unique entries of model i by λᵢ = 1 + r·clamp(ρᵢ, 0, α), with ρᵢ = (its shared entries) / (its
unique entries, at least epsilon), counted over the tensor (tensor-local): one pass over the
task vectors by pieces counts, a second merges (MergeKit forms every mask over the whole stacked
tensor, about 10 full-size buffers per model; the same values here, with piece-sized ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


def _prepare(tv_flat: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, ...]:
    """MergeKit's `_prepare_ram_vectors` on stacked flat task vectors: the contributing
    entries, their counts and the overlap / unique masks."""
    nonzero = tv_flat.abs() > epsilon
    counts = nonzero.sum(dim=0, keepdim=True)
    return nonzero, counts, counts > 1, counts == 1


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
        base = ctx.base
        assert base is not None
        tv_flat = torch.stack([t - base for t in ctx.tensors], dim=0).view(len(ctx.tensors), -1)
        nonzero, counts, overlap, unique = _prepare(tv_flat, ctx.params["epsilon"])
        tv = tv_flat * nonzero
        merged = ((tv * unique) + (tv * overlap / counts.clamp(min=1))).sum(dim=0, keepdim=True)
        return base + merged.reshape_as(base)


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
        base = ctx.base
        assert base is not None
        flat = [d.reshape(-1) for d in ctx.task_vectors()]
        n = base.numel()

        def stacked(s: int, e: int) -> torch.Tensor:
            return torch.stack([d[s:e] for d in flat], dim=0)

        def count_piece(s: int, e: int) -> list[int]:
            nonzero, _, overlap, unique = _prepare(stacked(s, e), epsilon)
            return torch.cat([(nonzero & overlap).sum(dim=1), (nonzero & unique).sum(dim=1)]).tolist()

        t = len(flat)
        shared, alone = ctx.piece_sums(count_piece, n, 2 * t, torch.int64).split(t)
        rho = shared / alone.clamp(min=epsilon)
        lam = 1 + ctx.params["r"] * rho.clamp(min=0, max=ctx.params["alpha"])
        out = torch.empty_like(base).view(-1)
        base_flat = base.reshape(-1)

        def merge_piece(s: int, e: int) -> None:
            tv_flat = stacked(s, e)
            nonzero, counts, overlap, unique = _prepare(tv_flat, epsilon)
            tv = tv_flat * nonzero
            merged = (tv * unique * lam.unsqueeze(-1)) + (tv * overlap / counts.clamp(min=1))
            torch.add(base_flat[s:e], merged.sum(dim=0), out=out[s:e])

        ctx.map_pieces(merge_piece, n)
        return out.view(base.shape)
