"""`iso_c` and `iso_cts`: Isotropic Merging (Marczak et al. 2025, "No Task Left Behind:
Isotropic Model Merging with Common and Task-Specific Subspaces"), as fusion_bench 0.2.33
runs it (method/isotropic_merging/iso_utils.py, which follows the authors' iso-merging code).

With base θ₀ and T models, δᵢ = θᵢ − θ₀. Every 2-D tensor (m×n, r = min(m, n); embeddings
included unless `exclude` names them):

- `iso_c`: Δ = Σᵢ δᵢ = U diag(s) Vᵀ (thin SVD), M = s̄ · U Vᵀ with s̄ = mean of all r singular
  values: the spectrum of the summed task matrix flattened to its mean.
- `iso_cts`: c₀ = ⌊r · common_space_fraction⌋, the task-specific total rounded to a multiple of
  T, t = round((r − c₀)/T) · T (Python's round: half to even), common size c = r − t, per-task
  size k = t/T. Common space: the c leading singular triples of Δ (U_c, s_c, V_c). Task i: the
  k leading singular triples of δᵢ − U_c U_cᵀ δᵢ (its part outside the common left subspace).
  Concatenate the T task blocks, then the common block (U_cat m×r, s_cat r, V_cat n×r), replace
  U_cat and V_cat by their polar factors (U⊥ = PQᵀ where U_cat = PΣQᵀ), M = s̄ · U⊥ V⊥ᵀ with s̄ =
  mean of s_cat. `common_space_fraction: 1` gives c = r, k = 0: U_c is already orthonormal and
  M is Iso-C's (up to rounding).

Every other tensor (1-D norms and biases, and an excluded one): M = mean of the δᵢ. Output
θ₀ + scaling_factor · M (fusion_bench scales every tensor, 1-D ones included).

Defaults are fusion_bench's config/method/isotropic_merging/iso_c.yaml and iso_cts.yaml:
scaling_factor 1.0, common_space_fraction 0.8, exclude_keys null (every 2-D tensor takes the
SVD path). The paper tunes scaling_factor on validation data; its range here is [0, ∞).

`svd`: `full` takes LAPACK SVDs throughout, as fusion_bench calls them. `exact` takes the same
decompositions from Gram matrices, as tsvm's `exact`: Iso-C's U Vᵀ is Δ's polar factor
Δ(ΔᵀΔ)^(-1/2) and its singular values the square roots of the float64 Gram eigenvalues;
Iso-CTS's common and task-specific triples are `leading_svd`'s and its polar factors
`polar`'s. A numerically singular Gram matrix (a rank-deficient sum, a task of rank < k)
falls back to the full SVD, so the null-space choice above is unchanged. `auto` (the
default) is `exact` on a matrix whose short side is 2048 or more or whose long side is 4
times its short side (an 8B model's matrices; embeddings and lm_head at any size), `full` on
the others. Measured on 2 CPU cores, on a 32000×1024 embedding: Iso-C's polar factor and
spectrum took 1.50 s and +222 MiB by the Gram path, 2.29 s and +302 MiB by the SVD (its
column-major copy of the sum and its m×r U); Iso-CTS's 819 common triples 2.01 s and
+264 MiB against 1.84 s and +302 MiB, the difference that brings Iso-CTS inside the engine's
memory bound (the SVD put it 44 MiB over). On 1024×1024 tasks the float32 SVDs won (an
Iso-CTS update took 1.40 s by SVDs, 2.29 s by the float64 Gram eigensolves); at 4096 wide
TSVM's Gram path was 2-2.5x faster than its SVDs (not measured for Iso on those shapes).

Choices the CLIP code did not have to make, for LLMs:
- Embeddings (embed_tokens, lm_head: vocab × hidden): 2-D, so they take the SVD path, as
  fusion_bench does with every 2-D key; flattening the spectrum of a vocabulary matrix spreads
  the update over every token row, and its SVD is the most expensive of the model (a 128k×4k
  thin SVD and, for Iso-CTS, several m×r factors). `exclude: [embed_tokens, lm_head]` (name
  substrings, as tsvm's) sends them to the mean path instead.
- 1-D tensors (norms, biases): the mean of the deltas, as fusion_bench.
- Non-square matrices: thin SVDs, r = min(m, n), as fusion_bench; Iso-CTS projects the common
  subspace out on the left (U side) whichever side is shorter, as fusion_bench does.
- Rank-deficient sums: s̄ counts the zero singular values, and the singular vectors of a zero
  singular value (any orthonormal basis of the null space; LAPACK/cuSOLVER pick one) get weight
  s̄ like the others, exactly as fusion_bench computes it; with low-rank deltas (LoRA fine-tunes)
  Iso-C therefore writes a full-rank update whose null-space part is the solver's choice
  (deterministic on one device and library, not across them); Iso-CTS likewise when k exceeds
  a task's rank outside the common space.
- Rank rounding (Iso-CTS): c₀ = int(r · fraction) and round() exactly as fusion_bench,
  floating point included (r = 100, fraction 0.29 gives c₀ = int(28.999999999999996) = 28).

Memory: the T deltas (made in place in the inputs' buffers), Σδ, and the SVD factors of one
matrix (Iso-CTS: a residual δᵢ − U_c U_cᵀ δᵢ at a time, each δᵢ freed once projected, and the
m×r / r×n concatenations).

Deviations from fusion_bench:
- SVDs run in fp32 on the compute dtype's deltas (as tsvm); by default (`svd: auto`, above)
  wide and elongated matrices take them from float64 Gram matrices instead, which agree with
  fusion_bench's float32 SVDs to their rounding; Iso-C sums the deltas directly (fusion_bench averages, then multiplies by T:
  equal up to rounding).
- Iso-CTS projects as U_c (U_cᵀ δᵢ), not (U_c U_cᵀ) δᵢ: the same matrix, but never the m×m
  product (65 GB in fp32 for a 128k vocabulary).
- Iso-CTS with t > r (only for small fractions: r = 3, T = 2, fraction 0 gives t = 4):
  fusion_bench slices past the rank and fails; here t drops by T to the largest multiple of T
  that fits.
- The concatenation is built directly (T task blocks, then the common block): the same r
  columns as fusion_bench's zero-initialised buffer, which T·k + c = r fills completely; with
  k = 0 the per-task SVDs (computed and discarded by fusion_bench) are skipped.
- `exclude` matches substrings of tensor names (fusion_bench's exclude_keys: exact keys).
"""

from __future__ import annotations

import torch

from mixmerge.merge.base import Param, TensorContext, register_method
from mixmerge.merge.methods.tsvm import (
    FP32_GRAM_MIN,
    SVD_PARAMS,
    TSVMerge,
    consume,
    leading_svd,
    polar,
    polar_spectrum,
    svd,
)

EXCLUDE = next(p for p in SVD_PARAMS if p.name == "exclude")
SCALING = Param(
    "scaling_factor", float, default=1.0, low=0.0, doc="multiplies the merged task vector"
)
SVD = Param(
    "svd",
    str,
    default="auto",
    choices=("auto", "exact", "full"),
    doc="exact: the decompositions from Gram matrices (tsvm's); full: LAPACK SVDs; auto: "
    "exact on matrices 2048 wide or 4x as long as wide, full on the others",
)
# `auto` takes the Gram path from this short side on, or this aspect ratio (see the docstring)
GRAM_MIN_SIDE = FP32_GRAM_MIN
GRAM_MIN_ASPECT = 4


def decomposition(shape: tuple[int, ...], svd_param: str) -> str:
    """`exact` or `full`: how the decompositions of one m×n matrix are taken."""
    if svd_param != "auto":
        return svd_param
    short, long = min(shape), max(shape)
    return "exact" if short >= GRAM_MIN_SIDE or long >= GRAM_MIN_ASPECT * short else "full"


def summed(deltas: list[torch.Tensor]) -> torch.Tensor:
    """Σᵢ δᵢ in fp32, in input order (a new tensor; the deltas are left as they are)."""
    total = deltas[0].to(torch.float32, copy=True)
    for d in deltas[1:]:
        total += d
    return total


def iso_cts_split(r: int, tasks: int, fraction: float) -> tuple[int, int]:
    """(common size c, per-task size k) with T·k + c = r, as fusion_bench's iso_cts."""
    common = int(r * fraction)
    task_total = round((r - common) / tasks) * tasks
    if task_total > r:  # fusion_bench would slice past the rank; round down instead
        task_total -= tasks
    return r - task_total, task_total // tasks


@register_method
class IsoCMerge(TSVMerge):
    name = "iso_c"
    pretty_name = "Iso-C"
    reference_url = "https://arxiv.org/abs/2502.04959"
    needs_base = True
    global_params = (SCALING, SVD, EXCLUDE)
    model_params = ()
    scale_param = "scaling_factor"

    def matrix_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        total = summed(deltas)
        if min(total.shape) == 0:
            return total
        if decomposition(total.shape, ctx.params["svd"]) == "exact":  # U Vᵀ: Δ's polar factor
            factor, s = polar_spectrum(total, "exact")
            return factor.mul_(s.mean())
        u, s, vh = svd(total)
        del total
        return (u * s.mean()) @ vh


@register_method
class IsoCTSMerge(TSVMerge):
    name = "iso_cts"
    pretty_name = "Iso-CTS"
    reference_url = "https://arxiv.org/abs/2502.04959"
    needs_base = True
    global_params = (
        SCALING,
        Param(
            "common_space_fraction",
            float,
            default=0.8,
            low=0.0,
            high=1.0,
            doc="share of the rank given to the common subspace of the summed task matrix",
        ),
        SVD,
        EXCLUDE,
    )
    model_params = ()
    scale_param = "scaling_factor"

    def matrix_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        m, n = deltas[0].shape
        r = min(m, n)
        if r == 0:
            return torch.zeros(m, n, dtype=torch.float32, device=ctx.device)
        common, k = iso_cts_split(r, len(deltas), ctx.params["common_space_fraction"])
        mode = decomposition((m, n), ctx.params["svd"])
        total = summed(deltas)
        # the generator is never drawn from (no lowrank mode here)
        u_c, s_c, vh_c = leading_svd(total, common, mode, 0, 0, ctx.generator(0))
        del total
        us, ss, vhs = [], [], []
        if k > 0:
            for j, d in consume(deltas):  # each task vector freed once projected
                w = d.to(torch.float32)
                del d
                w_ts = w - u_c @ (u_c.mT @ w)
                del w
                u, s, vh = leading_svd(w_ts, k, mode, 0, 0, ctx.generator(j))
                del w_ts
                us.append(u)
                ss.append(s)
                vhs.append(vh)
        deltas.clear()  # not read again (with k = 0 none was consumed)
        u_perp = polar(torch.cat([*us, u_c], dim=1), mode)
        del us, u_c
        vh_perp = polar(torch.cat([*vhs, vh_c], dim=0), mode)
        del vhs, vh_c
        s_mean = torch.cat([*ss, s_c]).mean()
        return (u_perp * s_mean) @ vh_perp
