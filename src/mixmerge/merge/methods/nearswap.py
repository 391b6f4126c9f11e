"""`nearswap`: take the other model's value where it is near the base's, as MergeKit 0.1.5
merge_methods/nearswap.py.

Per element, with a the base and b the one other model: w = clamp(t / max(|a − b|, 1e-6), 0, 1)
and the result is w·b + (1 − w)·a, so values closer than t to the base's become the other
model's, and far ones stay near the base's. Elementwise: streamed in chunks.
Deviation: MergeKit passes a tensor only the base holds through; here every tensor must be in
both models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


@register_method
class NearSwapMerge(MergeMethod):
    name = "nearswap"
    pretty_name = "NearSwap"
    reference_url = "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001"
    needs_base = True
    global_params = (Param("t", float),)
    exact_models = 1
    model_params = ()

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        return True

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        a, b = ctx.base, ctx.tensors[0]
        assert a is not None
        weight = (ctx.params["t"] / torch.abs(a - b).clamp(min=1e-6)).clamp(min=0, max=1)
        return weight * b + (1 - weight) * a
