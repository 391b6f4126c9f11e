"""`breadcrumbs` / `breadcrumbs_ties`: Model Breadcrumbs (Davari & Belilovsky 2023), as MergeKit.

Per model: drop the largest int(gamma·N) entries of |δ| (outliers) and the smallest ones so
that int(density·N) remain, then task arithmetic (`breadcrumbs`) or the TIES sign election
(`breadcrumbs_ties`). MergeKit defaults: normalize false, rescale false; gamma 0.01.

Deviation from MergeKit (a defect there): when int(gamma·N) = 0 MergeKit's slice
`sorted[n_bot:-0]` is empty and the whole task vector is dropped; here nothing is cut at
the top and the int(density·N) largest entries are kept, as intended.
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import Param, TensorContext, register_method
from mixmerge.merge.methods.gta import (
    GeneralizedTaskArithmetic,
    gta_global_params,
    magnitude_outliers,
)


@register_method
class BreadcrumbsMerge(GeneralizedTaskArithmetic):
    name = "breadcrumbs"
    pretty_name = "Model Breadcrumbs"
    reference_url = "https://arxiv.org/abs/2312.06795"
    consensus = None
    global_params = gta_global_params(default_normalize=False, default_rescale=False)
    model_params = (
        *GeneralizedTaskArithmetic.model_params,
        Param("gamma", float, default=0.01, low=0.0, high=1.0),
    )

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        p = ctx.model_params[j]
        return magnitude_outliers(delta, p["density"], p["gamma"], ctx.params["rescale"])


@register_method
class BreadcrumbsTiesMerge(BreadcrumbsMerge):
    name = "breadcrumbs_ties"
    pretty_name = "Model Breadcrumbs with TIES"
    consensus = "sum"
