"""`task_arithmetic`: base + lambda · Σ w_i (θ_i − θ_base) (Ilharco et al. 2023)."""

from __future__ import annotations

from mixmerge.merge.base import register_method
from mixmerge.merge.methods.gta import GeneralizedTaskArithmetic, gta_global_params


@register_method
class TaskArithmeticMerge(GeneralizedTaskArithmetic):
    name = "task_arithmetic"
    pretty_name = "Task Arithmetic"
    reference_url = "https://arxiv.org/abs/2212.04089"
    consensus = None
    # MergeKit registry: task_arithmetic has normalize=False, rescale=False by default. It also
    # declares density (the GTA family's per-model parameter), which it never uses: no sparsify.
    global_params = gta_global_params(default_normalize=False, default_rescale=False)
