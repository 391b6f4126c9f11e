"""`nuslerp`: spherical interpolation of two models, or of their task vectors when a base is
given, as MergeKit 0.1.5 merge_methods/nuslerp.py.

t = w₁ / (w₀ + w₁) from the two models' `weight`s (0.5 when they sum to less than 1e-6 in
magnitude). The vectors are normalised (norm clamped at 1e-7); cos θ = ⟨u₀, u₁⟩ clamped to
[-1, 1]; (sin((1 − t)θ)·v₀ + sin(tθ)·v₁) / sin θ, or (1 − t)·v₀ + t·v₁ where 1 − cos²θ ≤ 1e-16.
`nuslerp_flatten: true` (default) takes one angle per tensor; false takes one per vector
along the last dimension, or with `nuslerp_row_wise: true` along the first (MergeKit transposes
dimension 0 to the end). With a base: base + nuslerp(t, θ₀ − base, θ₁ − base).
Deviation: MergeKit passes a tensor only one model holds through; here both must hold it.
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


def nuslerp(
    t: float, v0: torch.Tensor, v1: torch.Tensor, dim: int = -1, flatten: bool = False
) -> torch.Tensor:
    """MergeKit's `nuslerp(t, v0, v1, dim, eps=1e-8, flatten)`."""
    out_shape, eps = v0.shape, 1e-8

    def normalize(x: torch.Tensor) -> torch.Tensor:
        return x / torch.norm(x, dim=-1, keepdim=True).clamp(min=1e-7)

    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif dim != -1:
        v0, v1 = v0.transpose(dim, -1), v1.transpose(dim, -1)
    cos_theta = torch.sum(normalize(v0) * normalize(v1), dim=-1, keepdim=True).clamp(-1, 1)
    colinear = (1 - cos_theta.square()) <= eps**2
    theta = torch.acos(torch.where(colinear, 0, cos_theta))
    result = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    result = torch.where(colinear, (1 - t) * v0 + t * v1, result)
    if dim != -1 and not flatten:
        result = result.transpose(dim, -1)
    return result.reshape(out_shape)


@register_method
class NuSlerpMerge(MergeMethod):
    name = "nuslerp"
    pretty_name = "NuSLERP"
    reference_url = "https://github.com/arcee-ai/mergekit"
    optional_base = True  # with a base, the task vectors are interpolated
    global_params = (
        Param("nuslerp_row_wise", bool, default=False),
        Param("nuslerp_flatten", bool, default=True),
    )
    exact_models = 2
    model_params = (Param("weight", float),)

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        w0, w1 = (float(p["weight"]) for p in ctx.model_params)
        total = w0 + w1
        t = 0.5 if abs(total) < 1e-6 else w1 / total
        dim = 0 if ctx.params["nuslerp_row_wise"] else -1
        flatten = ctx.params["nuslerp_flatten"]
        a, b = ctx.tensors
        if ctx.base is None:
            return nuslerp(t, a, b, dim, flatten)
        return ctx.base + nuslerp(t, a - ctx.base, b - ctx.base, dim, flatten)
