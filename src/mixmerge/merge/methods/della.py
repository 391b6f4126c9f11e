"""`della` / `della_linear`: DELLA-Merging (Deep et al. 2024) MagPrune, as MergeKit runs it.

Per model: rank |δ| along dim 1, keep each entry with probability
density − epsilon + 2·epsilon·rank/(n − 1) (larger magnitude → likelier kept), rescale
(default on; `rescale_mode: l1` as current MergeKit, `inverse_density` = divide each kept
entry by its keep probability, the DELLA paper), then the TIES sign election (`della`) or
plain task arithmetic (`della_linear`), × lambda. MergeKit defaults: della normalize true,
della_linear normalize false, both rescale true; epsilon 0.15.

density ± epsilon must lie in (0, 1) whenever 0 < density < 1 (MergeKit raises at merge
time; here the recipe is rejected before anything is read or written).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import Param, TensorContext, register_method
from mixmerge.merge.errors import MergeError
from mixmerge.merge.methods.gta import (
    GeneralizedTaskArithmetic,
    della_magprune,
    gta_global_params,
)


@register_method
class DellaMerge(GeneralizedTaskArithmetic):
    name = "della"
    pretty_name = "DELLA"
    reference_url = "https://arxiv.org/abs/2406.11617"
    uses_rng = True
    consensus = "sum"
    global_params = gta_global_params(
        default_normalize=True, default_rescale=True, rescale_modes=True
    )
    model_params = (
        *GeneralizedTaskArithmetic.model_params,
        Param("epsilon", float, default=0.15, low=0.0, high=1.0),
    )

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        for p, label in zip(model_params, model_labels, strict=True):
            density, eps = p["density"], p["epsilon"]
            if 0 < density < 1 and (density + eps >= 1 or density - eps <= 0):
                raise MergeError(
                    f"{self.name}: density ± epsilon must lie in (0, 1) for model {label} at "
                    f"tensor {tensor_name} (density {density:g}, epsilon {eps:g})"
                )

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        p = ctx.model_params[j]
        return della_magprune(
            ctx,
            j,
            delta,
            p["density"],
            p["epsilon"],
            ctx.params["rescale"],
            ctx.params["rescale_mode"],
        )


@register_method
class DellaLinearMerge(DellaMerge):
    name = "della_linear"
    pretty_name = "Linear DELLA"
    consensus = None
    global_params = gta_global_params(
        default_normalize=False, default_rescale=True, rescale_modes=True
    )
