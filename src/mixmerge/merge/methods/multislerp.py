"""`multislerp`: barycentric interpolation of any number of models on the hypersphere, as
MergeKit 0.1.5 merge_methods/multislerp.py.

With a base the task vectors are interpolated and the base added back. The (flattened) vectors
are projected onto the unit sphere (norm + eps), their weighted mean normalised, the unit vectors
mapped to the tangent space there, averaged with the weights (normalised to sum 1 unless
`normalize_weights: false`), mapped back with the exponential map and scaled by the weighted
mean norm. One model: its tensor. A weighted mean of norm < eps: for two models the plain
weighted sum, else an error naming the tensor (MergeKit raises too).
Deviation: MergeKit's `eps` is a parameter (default 1e-8) and so is it here.

MergeKit stacks the inputs and forms each step over the whole stack (about 5 full-size buffers
per input); here every step is a pass over cache-sized pieces on the engine's workers
(`ctx.map_pieces`), each unit vector recomputed from its input where it is needed, so the method
holds its inputs plus two buffers (the mean and the tangent). The same operations per entry;
the norms and dot products are summed piece by piece, so their last float bits can differ from
one whole-tensor reduction.
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
        base = ctx.base
        vectors = ctx.task_vectors() if base is not None else list(ctx.tensors)
        shape = vectors[0].shape
        flat = [v.reshape(-1) for v in vectors]
        n, count = flat[0].numel(), len(flat)
        weights = torch.tensor(
            [p["weight"] for p in ctx.model_params], dtype=ctx.dtype, device=ctx.device
        )
        if ctx.params["normalize_weights"]:
            weights = weights / weights.sum()
        w = list(weights)
        norms = ctx.map(torch.norm, flat)
        scales = [norm + eps for norm in norms]

        def unit(i: int, s: int, e: int) -> torch.Tensor:
            return flat[i][s:e] / scales[i]

        mean = torch.empty_like(flat[0])

        def mean_piece(s: int, e: int) -> None:
            acc = mean[s:e]
            torch.mul(unit(0, s, e), w[0], out=acc)
            for i in range(1, count):
                acc += unit(i, s, e) * w[i]

        ctx.map_pieces(mean_piece, n)
        mean_norm = torch.norm(mean)
        if mean_norm < eps:
            if count != 2:
                raise MergeError(
                    f"multislerp: the weighted mean of the inputs is zero at tensor {ctx.name} "
                    "(antipodal inputs whose weights balance out): use other weights"
                )
            res = vectors[0] * w[0] + vectors[1] * w[1]
            return res if base is None else res + base
        mean /= mean_norm

        def dot_piece(s: int, e: int) -> list[float]:
            m = mean[s:e]
            return [(unit(i, s, e) * m).sum().item() for i in range(count)]

        dots = ctx.piece_sums(dot_piece, n, count, mean.dtype)
        tangent = torch.empty_like(mean)

        def tangent_piece(s: int, e: int) -> list[float]:
            m, acc = mean[s:e], tangent[s:e]
            torch.mul(unit(0, s, e) - dots[0] * m, w[0], out=acc)
            for i in range(1, count):
                acc += (unit(i, s, e) - dots[i] * m) * w[i]
            return [acc.square().sum().item()]

        tangent_norm = ctx.piece_sums(tangent_piece, n, 1, mean.dtype)[0].sqrt() + eps
        del vectors, flat[:]  # the task vectors are no longer read: free them before the last pass
        cos, sin = torch.cos(tangent_norm), torch.sin(tangent_norm) / tangent_norm
        scale = (torch.stack(norms) * weights).sum()
        base_flat = base.reshape(-1) if base is not None else None

        def result_piece(s: int, e: int) -> None:
            m = mean[s:e]
            r = m * cos + tangent[s:e] * sin
            r *= scale
            if base_flat is not None:
                r += base_flat[s:e]
            m.copy_(r)

        ctx.map_pieces(result_piece, n)
        return mean.view(shape)
