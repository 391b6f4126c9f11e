"""`linear`: weighted average of the listed models (MergeKit merge_methods/linear.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method
from mixmerge.merge.errors import MergeError


def reject_zero_weight_sum(
    method: str, tensor_name: str, model_params: Sequence[dict[str, Any]]
) -> None:
    """Normalised weights that sum to 0: MergeKit would divide by zero and write inf/NaN."""
    if sum(p["weight"] for p in model_params) == 0:
        raise MergeError(f"{method}: weights sum to 0 at tensor {tensor_name} with normalize: true")


@register_method
class LinearMerge(MergeMethod):
    name = "linear"
    pretty_name = "Linear"
    reference_url = "https://arxiv.org/abs/2203.05482"
    # The base model takes part only if it is listed under `models` (with its weight).
    needs_base = False
    global_params = (Param("normalize", bool, default=True),)
    model_params = (Param("weight", float),)

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        if params["normalize"]:
            reject_zero_weight_sum(self.name, tensor_name, model_params)

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        return True

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        # MergeKit: (weights * stacked).sum(dim=0) / weights.sum(dim=0), weights in the tensors'
        # dtype. The same products and the same in-order sum, accumulated without stacking.
        w = torch.tensor([p["weight"] for p in ctx.model_params], dtype=ctx.dtype)
        res = ctx.tensors[0] * float(w[0])
        for x, wj in zip(ctx.tensors[1:], w[1:].tolist(), strict=True):
            res += x * wj
        if ctx.params["normalize"]:
            res /= float(w.sum())
        return res
