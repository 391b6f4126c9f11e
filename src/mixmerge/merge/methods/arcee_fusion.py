"""`arcee_fusion`: take the other model's change where it matters most, as MergeKit 0.1.5
merge_methods/arcee_fusion.py.

With b the base and x the one other model: importance = |x − b| · KL(softmax(x) ‖ softmax(b))
along the last dimension (each softmax + 1e-8); the threshold is median + 1.5·(q3 − q1) of the
importances (quantiles read off the sorted values at index ⌊q·(n − 1)⌋); the result is
b + (x − b)·[importance ≥ threshold].
Deviation: above 10^6 entries MergeKit reads the quantiles off 10^6 entries drawn with
replacement by the unseeded global RNG, so its output changes from run to run; here the draw is
seeded per (seed, tensor), so a recipe and seed give the same bytes every time. Smaller tensors
are exact in both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mixmerge.merge.base import MergeMethod, TensorContext, register_method

QUANTILE_SAMPLE_SIZE = 1_000_000


def importance(params: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    diff = (params - base).abs()
    p = F.softmax(params, dim=-1) + 1e-8
    q = F.softmax(base, dim=-1) + 1e-8
    return diff * torch.sum(p * torch.log(p / q), dim=-1, keepdim=True)


def quantiles(values: torch.Tensor, q: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flat = values.reshape(-1)
    if flat.numel() > QUANTILE_SAMPLE_SIZE:
        picks = torch.randint(flat.numel(), (QUANTILE_SAMPLE_SIZE,), generator=generator)
        flat = flat[picks.to(flat.device)]
    ordered, _ = torch.sort(flat)
    return ordered[(q.to(ordered.device) * (ordered.numel() - 1)).long()]


@register_method
class ArceeFusionMerge(MergeMethod):
    name = "arcee_fusion"
    pretty_name = "Arcee Fusion"
    reference_url = "https://arcee.ai"
    needs_base = True
    global_params = ()
    exact_models = 1
    model_params = ()

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base, other = ctx.base, ctx.tensors[0]
        assert base is not None
        scores = importance(other, base)
        q1, median, q3 = quantiles(scores, torch.tensor([0.25, 0.5, 0.75]), ctx.generator(0))
        mask = (scores >= median + 1.5 * (q3 - q1)).float()
        return base + (other - base) * mask
