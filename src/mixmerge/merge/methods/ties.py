"""`ties`: TIES-Merging (Yadav et al. 2023) as MergeKit runs it.

Per model: keep the top int(density·N) entries of |δ| (magnitude), weight by `weight`,
elect the majority sign of Σ w·δ per entry and sum only agreeing entries, divided by the
sum of the agreeing weights (normalize, default true), × lambda, + base.
MergeKit defaults: consensus sum, sparsification magnitude, normalize true, rescale false.
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import TensorContext, register_method
from mixmerge.merge.methods.gta import GeneralizedTaskArithmetic, gta_global_params, magnitude


@register_method
class TiesMerge(GeneralizedTaskArithmetic):
    name = "ties"
    pretty_name = "TIES"
    reference_url = "https://arxiv.org/abs/2306.01708"
    consensus = "sum"
    global_params = gta_global_params(default_normalize=True, default_rescale=False)

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        return magnitude(delta, ctx.model_params[j]["density"], ctx.params["rescale"])
