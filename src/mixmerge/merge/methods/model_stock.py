"""`model_stock`: Model Stock (Jang et al. 2024), as MergeKit merge_methods/model_stock.py.

With base θ₀ and N ≥ 2 fine-tunes θᵢ: offsets δᵢ = θᵢ − θ₀, cos θ = mean over pairs i < j
of cos(δᵢ, δⱼ) (norm product clamped at 1e-6, cos clamped to [−1, 1]),
t = N·cos θ / (1 + (N − 1)·cos θ), result t·mean(θᵢ) + (1 − t)·θ₀.
`filter_wise: false` (default) takes one angle per tensor (flattened); `true` takes one per
row (last dimension; a 1-D tensor is one row). No per-model parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method
from mixmerge.merge.errors import MergeError


@register_method
class ModelStockMerge(MergeMethod):
    name = "model_stock"
    pretty_name = "Model Stock"
    reference_url = "https://arxiv.org/abs/2403.19522"
    needs_base = True
    global_params = (Param("filter_wise", bool, default=False),)
    model_params = ()

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        # MergeKit: "ModelStockMerge requires at least 3 models (base plus two+ others)".
        if len(model_params) < 2:
            raise MergeError(
                f"model_stock needs at least 2 models besides the base, got {len(model_params)}"
            )

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        w0 = ctx.base
        assert w0 is not None
        out_shape = w0.shape
        n = len(ctx.tensors)
        # MergeKit: w_avg = sum(ws) / len(ws), accumulated in recipe order.
        w_avg = ctx.tensors[0].clone()
        for w in ctx.tensors[1:]:
            w_avg += w
        w_avg /= n
        if ctx.params["filter_wise"]:
            base = w0.unsqueeze(0) if w0.dim() == 1 else w0
        else:
            base = w0.reshape(-1)
        offsets = [ctx.mutable(j).reshape(base.shape).sub_(base) for j in range(n)]
        norms = [torch.linalg.vector_norm(o, dim=-1) for o in offsets]
        cos_thetas = []
        for i in range(n):
            for j in range(i + 1, n):
                dot = torch.einsum("...k,...k->...", offsets[i], offsets[j])
                norm_product = norms[i] * norms[j]
                cos_thetas.append((dot / norm_product.clamp(min=1e-6)).clamp(-1, 1))
        del offsets
        cos_theta = torch.stack(cos_thetas).mean(dim=0).unsqueeze(-1)
        t = (n * cos_theta) / (1 + (n - 1) * cos_theta)
        # t·w_avg + (1 − t)·w0, in place (the same products and sum, no full-size temporaries)
        w_h = w_avg.reshape(base.shape).mul_(t).addcmul_(1 - t, base)
        return w_h.reshape(out_shape)
