"""`dare_linear` / `dare_ties`: DARE (Yu et al. 2024) random drop-and-rescale, as MergeKit.

Per model: keep each entry of δ with probability `density` (a Bernoulli mask drawn from the
per-(seed, tensor, model) generator), rescale (default on): `rescale_mode: l1` restores
‖δ‖₁ as current MergeKit does, `inverse_density` divides by density as the DARE paper and
MergeKit before 0.1 did. Then task arithmetic (`dare_linear`) or the TIES sign election
(`dare_ties`). MergeKit defaults: normalize false, rescale true for both.
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import TensorContext, register_method
from mixmerge.merge.methods.gta import (
    GeneralizedTaskArithmetic,
    gta_global_params,
    random_drop,
)


@register_method
class DareLinearMerge(GeneralizedTaskArithmetic):
    name = "dare_linear"
    pretty_name = "Linear DARE"
    reference_url = "https://arxiv.org/abs/2311.03099"
    uses_rng = True
    consensus = None
    global_params = gta_global_params(
        default_normalize=False, default_rescale=True, rescale_modes=True
    )

    def sparsify(self, ctx: TensorContext, j: int, delta: torch.Tensor) -> torch.Tensor:
        return random_drop(
            ctx,
            j,
            delta,
            ctx.model_params[j]["density"],
            ctx.params["rescale"],
            ctx.params["rescale_mode"],
        )


@register_method
class DareTiesMerge(DareLinearMerge):
    name = "dare_ties"
    pretty_name = "DARE TIES"
    consensus = "sum"
