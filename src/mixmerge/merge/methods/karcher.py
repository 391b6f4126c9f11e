"""`karcher`: the Karcher (Riemannian) mean of the models on the unit hypersphere, scaled by their
mean norm, as MergeKit 0.1.5 merge_methods/karcher.py.

Every listed model weighs 1/N. Norms are taken in float32 (float64 for float64 inputs); models of
norm ≤ `tol` are left out of the mean (all of them: zeros). From the normalised weighted mean
of the unit vectors (the first unit vector if that mean is shorter than `tol`), up to `max_iter`
steps move along the mean of the log maps (θ / sin θ)·(u − cos θ·m), stopping once the step is
shorter than `tol`; the result is Σ αᵢ‖θᵢ‖ times the mean. A `base_model` that is not listed
under `models` is one more input, after them (MergeKit adds the base to a merge's inputs).
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method


def karcher_mean(
    tensors: list[torch.Tensor], alphas: list[float], max_iter: int, tol: float
) -> torch.Tensor:
    """MergeKit's `karcher_merge_tensors`."""
    if len(tensors) == 1:
        return tensors[0]
    dtype = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    norms, units = [], []
    for tensor in tensors:
        norm = torch.linalg.vector_norm(tensor.to(dtype))
        norms.append(norm)
        units.append(torch.zeros_like(tensor) if norm.item() == 0.0 else (tensor / norm).to(tensor.dtype))
    valid = [i for i, norm in enumerate(norms) if norm.item() > tol]
    if not valid:
        return sum(tensor * 0 for tensor in tensors)
    total = sum(alphas[i] for i in valid)
    weights = [alphas[i] / total for i in valid]
    valid_units = [units[i] for i in valid]
    mean = torch.zeros_like(valid_units[0])
    for alpha, unit in zip(weights, valid_units, strict=True):
        mean += alpha * unit
    mean_norm = torch.linalg.vector_norm(mean.to(dtype))
    mean = valid_units[0].clone() if mean_norm.item() < tol else (mean / mean_norm).to(mean.dtype)
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for alpha, unit in zip(weights, valid_units, strict=True):
            dot = torch.clamp(torch.dot(mean.flatten(), unit.flatten()), -1.0, 1.0)
            theta = torch.arccos(dot)
            if theta.item() < tol:
                continue
            tangent += alpha * (theta / torch.sin(theta)) * (unit - dot * mean)
        tangent_norm = torch.linalg.vector_norm(tangent.to(dtype))
        if tangent_norm.item() < tol:
            break
        mean = (
            torch.cos(tangent_norm) * mean + torch.sin(tangent_norm) * (tangent / tangent_norm)
        ).to(mean.dtype)
        unit_norm = torch.linalg.vector_norm(mean.to(dtype))
        if unit_norm.item() > tol:
            mean = (mean / unit_norm).to(mean.dtype)
    scale = sum(alpha * norm for alpha, norm in zip(alphas, norms, strict=True))
    return scale * mean


@register_method
class KarcherMerge(MergeMethod):
    name = "karcher"
    pretty_name = "Karcher Mean"
    reference_url = "https://arxiv.org/abs/2603.04972"
    needs_base = False
    global_params = (
        Param("max_iter", int, default=10, low=1),
        Param("tol", float, default=1e-5, low=0.0),
    )
    model_params = ()

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        tensors = list(ctx.tensors)
        if ctx.base is not None and not any(t is ctx.base for t in tensors):
            tensors.append(ctx.base)
        n = len(tensors)
        return karcher_mean(tensors, [1.0 / n] * n, ctx.params["max_iter"], ctx.params["tol"])
