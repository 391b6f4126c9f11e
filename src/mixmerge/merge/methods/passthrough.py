"""`passthrough`: one model's tensors, optionally scaled, as MergeKit 0.1.5
merge_methods/passthrough.py (with `slices:` it assembles layer stacks; a recipe of `models:`
has one model, and `scale` multiplies its tensors, typically per tensor with a filter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


@register_method
class PassthroughMerge(MergeMethod):
    name = "passthrough"
    pretty_name = "Passthrough"
    reference_url = "https://github.com/arcee-ai/mergekit"
    needs_base = False  # MergeKit ignores a base_model for passthrough
    global_params = ()
    exact_models = 1
    model_params = (Param("scale", float, default=None),)

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        return True

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        scale = ctx.model_params[0]["scale"]
        return ctx.tensors[0] if scale is None else ctx.tensors[0] * scale
