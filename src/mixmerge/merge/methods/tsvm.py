"""`tsvm`: Task Singular Vectors merging (Gargiulo et al., CVPR 2025), as fusion_bench runs it.

With base θ₀ and T models, δᵢ = θᵢ − θ₀. Every 2-D tensor (m×n, r = min(m, n); embeddings
included unless `exclude` names them): SVD of each δᵢ in fp32, keep its k = ⌊r/T⌋ leading
components, concatenate the U blocks, singular values and V blocks, replace U_cat and V_cat by
their polar factors (U⊥ = PQᵀ where U_cat = PΣQᵀ, which decorrelates the tasks' singular
vectors), M = U⊥ diag(s) V⊥ᵀ. Every other tensor (and an excluded one): M = mean of the δᵢ.
Output θ₀ + alpha·M.

Options: `svd: exact` (LAPACK/cuSOLVER SVD) or `lowrank` (randomized SVD of each δᵢ with
q = k + oversample and `niter` power iterations, as `torch.svd_lowrank`, but with a Gaussian
test matrix drawn from the per-(seed, tensor, model) CPU generator so it is reproducible and
device-independent; the polar factors are always exact). `exclude`: substrings of tensor
names kept out of the SVD path (e.g. [embed_tokens, lm_head]).

Notes against fusion_bench: k is computed as r // T (fusion_bench's int(r · (1/T)) can
round down one too far, e.g. r = T = 49 gives 0); the polar factors are taken of the
compact m×Tk / Tk×n concatenations, which equals fusion_bench's zero-padded m×r form on the
columns that carry a singular value (the padded columns are multiplied by 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method

SVD_PARAMS = (
    Param("svd", str, default="exact", choices=("exact", "lowrank")),
    Param("niter", int, default=2, low=0),
    Param("oversample", int, default=10, low=0),
    Param("exclude", list, default=()),
)


def randomized_svd(
    a: torch.Tensor, q: int, niter: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank-q randomized SVD (Halko et al. 2011; torch.svd_lowrank's algorithm): U, S, Vh.

    The Gaussian test matrix is drawn on CPU from `generator` and moved to `a`'s device.
    """
    m, n = a.shape
    if m < n:  # work on the tall orientation
        u, s, vh = randomized_svd(a.mT, q, niter, generator)
        return vh.mT, s, u.mT
    r = torch.randn(n, q, generator=generator, dtype=torch.float32).to(a.device, a.dtype)
    basis = torch.linalg.qr(a @ r).Q
    for _ in range(niter):
        basis = torch.linalg.qr(a.mT @ basis).Q
        basis = torch.linalg.qr(a @ basis).Q
    ub, s, vh = torch.linalg.svd(basis.mT @ a, full_matrices=False)
    return basis @ ub, s, vh


def leading_svd(
    a: torch.Tensor, k: int, mode: str, niter: int, oversample: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k leading singular triples of `a` (fp32): U (m×k), S (k), Vh (k×n)."""
    q = k + oversample
    if mode == "lowrank" and q < min(a.shape):
        u, s, vh = randomized_svd(a, q, niter, generator)
    else:
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
    return u[:, :k].contiguous(), s[:k].contiguous(), vh[:k].contiguous()


def polar(a: torch.Tensor) -> torch.Tensor:
    """Orthogonal polar factor P Qᵀ of a = P Σ Qᵀ (the nearest matrix with orthonormal
    columns, or rows when a is wide)."""
    p, _, qh = torch.linalg.svd(a, full_matrices=False)
    return p @ qh


def tsv_components(
    ctx: TensorContext, deltas: Sequence[torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TSV candidates: (U⊥ m×Tk, s Tk, V⊥ᵀ Tk×n) from each task's k leading components."""
    mode, niter, over = ctx.params["svd"], ctx.params["niter"], ctx.params["oversample"]
    us, ss, vhs = [], [], []
    for j, d in enumerate(deltas):
        u, s, vh = leading_svd(d.to(torch.float32), k, mode, niter, over, ctx.generator(j))
        us.append(u)
        ss.append(s)
        vhs.append(vh)
    u_cat = torch.cat(us, dim=1)
    del us
    u_perp = polar(u_cat)
    del u_cat
    vh_cat = torch.cat(vhs, dim=0)
    del vhs
    vh_perp = polar(vh_cat)
    return u_perp, torch.cat(ss), vh_perp


def excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(p in name for p in patterns)


@register_method
class TSVMerge(MergeMethod):
    name = "tsvm"
    pretty_name = "TSV-Merge"
    reference_url = "https://arxiv.org/abs/2412.00081"
    needs_base = True
    global_params = (Param("alpha", float, default=1.0), *SVD_PARAMS)
    model_params = ()
    scale_param = "alpha"

    def deltas(self, ctx: TensorContext) -> list[torch.Tensor]:
        assert ctx.base is not None
        return [ctx.mutable(j).sub_(ctx.base) for j in range(len(ctx.tensors))]

    def is_matrix(self, ctx: TensorContext) -> bool:
        return (
            ctx.base is not None
            and ctx.base.dim() == 2
            and not excluded(ctx.name, ctx.params["exclude"])
        )

    def matrix_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        m, n = deltas[0].shape
        k = min(m, n) // len(deltas)
        if k == 0:  # fewer singular values than tasks: no component survives
            return torch.zeros(m, n, dtype=torch.float32, device=ctx.device)
        u_perp, s, vh_perp = tsv_components(ctx, deltas, k)
        return (u_perp * s) @ vh_perp

    def other_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        total = deltas[0].clone()
        for d in deltas[1:]:
            total += d
        return total.div_(len(deltas))

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base = ctx.base
        assert base is not None
        if not ctx.tensors:
            return base
        deltas = self.deltas(ctx)
        if self.is_matrix(ctx):
            update = self.matrix_update(ctx, deltas)
        else:
            update = self.other_update(ctx, deltas)
        del deltas
        update = update.to(base.dtype)
        scale = ctx.params[self.scale_param]
        if scale != 1:
            update.mul_(scale)
        return ctx.mutable_base().add_(update)
