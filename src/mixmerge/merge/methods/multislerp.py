"""`multislerp`: barycentric interpolation of any number of models on the hypersphere, as
MergeKit 0.1.5 merge_methods/multislerp.py.

With a base the task vectors are interpolated and the base added back. The (flattened) vectors
are projected onto the unit sphere (norm + eps), their weighted mean normalised, the unit vectors
mapped to the tangent space there, averaged with the weights (normalised to sum 1 unless
`normalize_weights: false`), mapped back with the exponential map and scaled by the weighted
mean norm. One model: its tensor. A weighted mean of norm < eps: for two models the plain
weighted sum, else an error naming the tensor (MergeKit raises too).
Deviation: MergeKit's `eps` is a parameter (default 1e-8) and so is it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method
from mixmerge.merge.errors import MergeError
from mixmerge.merge.methods.linear import reject_zero_weight_sum


@register_method
class MultiSlerpMerge(MergeMethod):
    name = "multislerp"
    pretty_name = "Multi-SLERP"
    reference_url = "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea"
    optional_base = True  # with a base, the task vectors are interpolated
    global_params = (
        Param("normalize_weights", bool, default=True),
        Param("eps", float, default=1e-8, low=0.0),
    )
    model_params = (Param("weight", float),)

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        if params["normalize_weights"]:
            reject_zero_weight_sum(self.name, tensor_name, model_params)

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        eps = ctx.params["eps"]
        if len(ctx.tensors) == 1:
            return ctx.tensors[0]
        tensors = torch.stack(list(ctx.tensors), dim=0)
        if ctx.base is not None:
            tensors -= ctx.base
        flat = tensors.view(tensors.shape[0], -1)
        weights = torch.tensor(
            [p["weight"] for p in ctx.model_params], dtype=tensors.dtype, device=tensors.device
        )
        if ctx.params["normalize_weights"]:
            weights = weights / weights.sum()
        norms = torch.norm(flat, dim=-1, keepdim=True)
        units = flat / (norms + eps)
        mean = (units * weights.view(-1, 1)).sum(0)
        mean_norm = torch.norm(mean)
        if mean_norm < eps:
            if tensors.shape[0] != 2:
                raise MergeError(
                    f"multislerp: the weighted mean of the inputs is zero at tensor {ctx.name} "
                    "(antipodal inputs whose weights balance out): use other weights"
                )
            res = (tensors[0] * weights[0] + tensors[1] * weights[1]).view(tensors.shape[1:])
            return res if ctx.base is None else res + ctx.base
        mean = mean / mean_norm
        dots = (units * mean).sum(-1, keepdim=True)
        tangent = ((units - dots * mean) * weights.view(-1, 1)).sum(0)
        tangent_norm = torch.norm(tangent) + eps
        result = mean * torch.cos(tangent_norm) + tangent * (torch.sin(tangent_norm) / tangent_norm)
        result = (result * (norms.squeeze(-1) * weights).sum()).view(tensors.shape[1:])
        return result if ctx.base is None else result + ctx.base
