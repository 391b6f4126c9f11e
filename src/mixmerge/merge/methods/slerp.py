"""`slerp`: spherical interpolation from the base to one other model, as MergeKit 0.1.5
merge_methods/slerp.py.

Per tensor, with v0 the base and v1 the other model (each flattened), in float32 (float64 for
float64 inputs): the norms are taken chunk by chunk (2^20 elements) and combined as the norm
of the chunk norms, a norm ≤ 1e-8 counts as 1; dot = Σ (v0/|v0|)·(v1/|v1|), clamped to [-1, 1].
Where |dot| > 0.9995 (collinear or antipodal) the result is (1 − t)·v0 + t·v1, else
sin((1 − t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1 with θ = acos(dot). `t` (0: the base, 1: the
other model) may be a gradient over the layers, as in MergeKit.
Deviation: MergeKit passes a tensor that only the base holds through unchanged; here every
tensor must be in both models (the plan says which is missing).
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method

CHUNK_ELEMENTS = 1024 * 1024  # MergeKit's _CHUNK_ELEMENTS
DOT_THRESHOLD = 0.9995
EPS = 1e-8


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """MergeKit's `slerp(t, v0, v1)` for one tensor (its output batch of one)."""
    dtype = torch.float64 if v0.dtype == torch.float64 else torch.float32
    a = v0.reshape(1, -1)
    b = v1.reshape(1, -1)
    tt = torch.tensor([[t]], dtype=torch.float32, device=v0.device).to(dtype)
    if not a.shape[1]:
        return ((1 - tt) * a + tt * b).reshape(v0.shape).to(v0.dtype)
    chunk = CHUNK_ELEMENTS
    spans = range(0, a.shape[1], chunk)

    def part(x: torch.Tensor, start: int) -> torch.Tensor:
        return x[:, start : start + chunk].to(dtype)

    norm_a = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(part(a, s), dim=1, keepdim=True) for s in spans]),
        dim=0,
    )
    norm_b = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(part(b, s), dim=1, keepdim=True) for s in spans]),
        dim=0,
    )
    norm_a = torch.where(norm_a > EPS, norm_a, 1)
    norm_b = torch.where(norm_b > EPS, norm_b, 1)
    dot = torch.stack(
        [((part(a, s) / norm_a) * (part(b, s) / norm_b)).sum(dim=1, keepdim=True) for s in spans]
    ).sum(dim=0).clamp(-1, 1)
    linear = dot.abs() > DOT_THRESHOLD
    theta = torch.acos(torch.where(linear, 0, dot))
    sin_theta = torch.sin(theta)
    coef_a = torch.where(linear, 1 - tt, torch.sin((1 - tt) * theta) / sin_theta)
    coef_b = torch.where(linear, tt, torch.sin(tt * theta) / sin_theta)
    result = torch.empty_like(a)
    for s in spans:
        result[:, s : s + chunk] = coef_a * part(a, s) + coef_b * part(b, s)
    return result.reshape(v0.shape)


@register_method
class SlerpMerge(MergeMethod):
    name = "slerp"
    pretty_name = "SLERP"
    reference_url = "https://en.wikipedia.org/wiki/Slerp"
    needs_base = True
    global_params = (Param("t", float),)
    exact_models = 1
    model_params = ()

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        assert ctx.base is not None
        return slerp(float(ctx.params["t"]), ctx.base, ctx.tensors[0])
