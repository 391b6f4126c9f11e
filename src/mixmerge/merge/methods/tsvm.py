"""`tsvm`: Task Singular Vectors merging (Gargiulo et al., CVPR 2025), as fusion_bench runs it.

With base θ₀ and T models, δᵢ = θᵢ − θ₀. Every 2-D tensor (m×n, r = min(m, n); embeddings
included unless `exclude` names them): SVD of each δᵢ in fp32, keep its k = ⌊r/T⌋ leading
components, concatenate the U blocks, singular values and V blocks, replace U_cat and V_cat by
their polar factors (U⊥ = PQᵀ where U_cat = PΣQᵀ, which decorrelates the tasks' singular
vectors), M = U⊥ diag(s) V⊥ᵀ. Every other tensor (and an excluded one): M = mean of the δᵢ.
Output θ₀ + alpha·M.

Options, `svd:`
- `exact` (default): the same decompositions, from Gram matrices. Each δᵢ's k leading
  components: the q = k + 128 leading eigenvectors of its smaller Gram matrix (δᵀδ or δδᵀ) in
  float32 (on CPU only those q, LAPACK's MRRR via scipy) span a subspace that holds them, and a
  float64 Rayleigh–Ritz step on δ itself (the SVD of δ·basis) gives the k triples, U = δV/s.
  Where σ_k < 1e-2·σ_1 float32 cannot place the trailing components (its Gram matrix carries
  ~7 digits of σ²), and where the Gram matrix is under 2048 wide (cache-resident, where float32
  saves less than the extra columns cost), that task's eigensolve runs in float64 on the k alone. Each polar factor
  is A (AᵀA)^(-1/2) from the float64 eigendecomposition of its Gram matrix: U_cat's Gram is
  ill-conditioned (eigenvalues down to ~1e-7 of the largest on 8B-shaped deltas), and float32
  there was 1.7e-2 off. On 8B-shaped deltas the merge lands within 4e-5 of `full`
  (`perf/merge_bench.py --svd-shapes` measures both). Where a Gram matrix is (numerically)
  singular (a task of rank < k, a zero task vector, candidate vectors that are linearly
  dependent) that decomposition falls back to `full`'s, so every input has the same,
  well-defined result.
- `full`: one LAPACK/cuSOLVER SVD per δᵢ and per polar factor, as fusion_bench calls them.
- `lowrank`: randomized SVD of each δᵢ with q = k + oversample and `niter` power iterations, as
  `torch.svd_lowrank`, but with a Gaussian test matrix drawn from the per-(seed, tensor, model)
  CPU generator so it is reproducible and device-independent; the polar factors as `exact`.
`exclude`: substrings of tensor names kept out of the SVD path (e.g. [embed_tokens, lm_head]).

Notes against fusion_bench: k is computed as r // T (fusion_bench's int(r · (1/T)) can
round down one too far, e.g. r = T = 49 gives 0); the polar factors are taken of the
compact m×Tk / Tk×n concatenations, which equals fusion_bench's zero-padded m×r form on the
columns that carry a singular value (the padded columns are multiplied by 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method

SVD_PARAMS = (
    Param("svd", str, default="exact", choices=("exact", "full", "lowrank")),
    # lowrank: 6 power iterations and 300 extra columns keep the merged update within 1% of
    # exact on 8B-shaped deltas (perf/merge_bench.py --svd-shapes); torch's 2 and 10 were ~40% off
    Param("niter", int, default=6, low=0),
    Param("oversample", int, default=300, low=0),
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
    ub, s, vh = svd(basis.mT @ a)
    return basis @ ub, s, vh


# Below this ratio to the largest eigenvalue a float64 Gram eigenvalue carries too few digits
# (singular values under 1e-5 of the largest): that decomposition falls back to a full SVD.
GRAM_RTOL = 1e-10
# The float32 eigensolve of a task's Gram matrix keeps this many columns beyond the k, so the
# k leading directions lie in its span even where the spectrum is flat around the k-th.
GRAM_OVERSAMPLE = 128
# ...and is trusted while σ_k ≥ this × σ_1 (λ_k ≥ 1e-4·λ_1, three digits above float32's
# rounding of the Gram matrix); below, that task's eigensolve runs in float64.
FP32_SIGMA_RATIO = 1e-2
# ...and pays from this Gram size on, where a float64 Gram matrix (32 MiB) outgrows the CPU
# caches and LAPACK's tridiagonal reduction is bound by memory traffic, which float32 halves
# (per task, 2 cores: 1.16x at 2048², 1.39x at 2560², 1.7x at 4096²; at 1024², 1.05-2x slower).
FP32_GRAM_MIN = 2048


# Elements per block when a float32 matrix takes part in a float64 product (`matmul64`,
# `gram64`): 64 MiB of float64 at a time, rather than a float64 copy of the whole matrix
# (470 MiB for an 8B model's 14336×4095 U_cat, 4 GiB for its 128256×4096 embedding). Smaller
# blocks cost time: a 4096×4095 Gram matrix took 0.75-1.02 s whole, 0.74-0.91 s in blocks of
# 2²³, 1.36-2.45 s in blocks of 2²¹.
BLOCK64 = 1 << 23


def _rows64(a: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, a[start:start + step] in float64) over `a`'s rows, a block at a time."""
    step = max(1, BLOCK64 // max(1, a.shape[1]))
    for s in range(0, a.shape[0], step):
        yield s, a[s : s + step].to(torch.float64)


def matmul64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in float64 for a float32 `a` and a float64 `b`, a's rows converted by blocks."""
    out = torch.empty(a.shape[0], b.shape[1], dtype=torch.float64, device=a.device)
    for s, block in _rows64(a):
        out[s : s + block.shape[0]] = matmul(block, b)
    return out


def gram64(a: torch.Tensor) -> torch.Tensor:
    """aᵀa in float64, summed over blocks of a's rows (each converted in turn)."""
    gram = None
    for _, block in _rows64(a):
        part = matmul(block.mT, block)
        gram = part if gram is None else gram.add_(part)
    assert gram is not None
    return gram


def consume(deltas: list[torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
    """(j, δⱼ) in order, each dropped from `deltas` (an empty tensor left in its place) as it
    is handed out: an update that reads each task vector once frees it as soon as it is used,
    so the T full-size buffers are gone before the polar factors are formed."""
    for j in range(len(deltas)):
        d, deltas[j] = deltas[j], deltas[j].new_empty(0)
        yield j, d


def eigh_top(sym: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a symmetric float32/float64 matrix, ascending: all, or the k largest.

    On CPU by scipy's LAPACK (?syevr computes only the k asked for; ?syevd for all), which is
    faster here than torch's; elsewhere by torch (cuSOLVER), all of them, then sliced."""
    n = sym.shape[0]
    if sym.device.type != "cpu":
        lam, vecs = torch.linalg.eigh(sym)
        return (lam, vecs) if k is None else (lam[n - k :], vecs[:, n - k :])
    import scipy.linalg

    if k is None:
        lam, vecs = scipy.linalg.eigh(sym.numpy(), driver="evd", check_finite=False)
    else:
        lam, vecs = scipy.linalg.eigh(
            sym.numpy(), subset_by_index=[n - k, n - 1], driver="evr", check_finite=False
        )
    return torch.from_numpy(lam), torch.from_numpy(vecs)


def svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD U, S, Vh (torch's: LAPACK's gesdd on CPU, cuSOLVER elsewhere).

    gesdd's divide and conquer can fail to converge on a matrix with many (near-)repeated
    singular values, as a task vector with a subspace projected out (Iso-CTS) often has; on
    that error the SVD is taken again by LAPACK's QR-iteration gesvd (scipy), in float64,
    which converges on such input, and cast back.

    A matrix at least twice as wide as tall is decomposed as its transpose (U and V swap):
    LAPACK's tall path ran 2.1-2.3x faster than its wide one on 1024×2816 and 1024×4096
    (CPU, 2 cores), and a row-major matrix's transpose is column-major, so nothing is copied;
    the factors agree with the wide path's to float32 rounding (3e-6)."""
    if a.shape[-1] >= 2 * a.shape[-2] > 0:
        u, s, vh = svd(a.mT)
        return vh.mT, s, u.mT
    try:
        return torch.linalg.svd(a, full_matrices=False)
    except torch.linalg.LinAlgError:
        if a.device.type != "cpu":
            raise
        import scipy.linalg

        u, s, vh = scipy.linalg.svd(
            a.double().numpy(), full_matrices=False, lapack_driver="gesvd", check_finite=False
        )
        return tuple(torch.from_numpy(x).to(a.dtype) for x in (u, s, vh))  # type: ignore[return-value]


def matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y; on CPU by numpy (its OpenBLAS ran these products 1.6-1.7x faster than torch's
    BLAS on this project's AMD machines; the Gram products are most of `exact`'s flops)."""
    if x.device.type != "cpu":
        return x @ y
    return torch.from_numpy(np.matmul(x.numpy(), y.numpy()))


def gram_svd(a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The k leading singular triples of `a` (fp32 U, S, Vh) from its smaller Gram matrix;
    None where the k-th singular value is too small for it (the caller takes a full SVD).

    A float32 eigensolve finds a q-column basis holding the k leading right singular vectors
    and a float64 Rayleigh–Ritz step on `a` extracts them (see the module docstring); a task
    whose σ_k is below FP32_SIGMA_RATIO·σ_1, or whose Gram matrix is under FP32_GRAM_MIN
    wide, is solved in float64 instead."""
    m, n = a.shape
    if m < n:
        out = gram_svd(a.mT, k)
        return None if out is None else (out[2].mT, out[1], out[0].mT)
    if n < FP32_GRAM_MIN:
        return gram_svd64(a, k)
    a32 = a.to(torch.float32)
    q = min(k + GRAM_OVERSAMPLE, n)
    _, basis = eigh_top(matmul(a32.mT, a32), q)
    # Rayleigh–Ritz in float64: orthonormalize the basis, then the SVD of a·basis (m×q)
    # through its q×q Gram matrix
    basis = torch.linalg.qr(basis.to(torch.float64)).Q
    proj = matmul64(a, basis)
    lam, w = eigh_top(matmul(proj.mT, proj))
    lam, w = lam[q - k :].flip(0), w[:, q - k :].flip(1)
    if GRAM_RTOL * lam[0] < lam[-1] < FP32_SIGMA_RATIO**2 * lam[0]:
        return gram_svd64(a, k)
    return triples(proj, w, lam, matmul(basis, w))


def gram_svd64(a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """`gram_svd` with the k leading eigenpairs of the float64 Gram matrix (`a` is tall)."""
    lam, v = eigh_top(gram64(a), k)
    lam, v = lam.flip(0), v.flip(1)
    return triples(a, v, lam, v)


def triples(
    a: torch.Tensor, w: torch.Tensor, lam: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """fp32 (U, S, Vh) with U = a·w/s (s = √lam, the Gram eigenvalues, descending) and
    Vh = vᵀ; None where the smallest eigenvalue is too small for a Gram matrix (also a zero
    matrix, or NaN). U is formed a row block of `a` at a time, in float64, into float32: no
    m×k float64 product (200 MiB for a 32000-row embedding's 819 common directions in
    Iso-CTS, 840 MiB for an 8B model's embedding in TSVM)."""
    if not lam[-1] > GRAM_RTOL * lam[0]:
        return None
    s = lam.sqrt()
    u = torch.empty(a.shape[0], w.shape[1], dtype=torch.float32, device=a.device)
    for start, block in _rows64(a):
        u[start : start + block.shape[0]] = matmul(block, w).div_(s)
    return u, s.to(torch.float32), v.mT.to(torch.float32).contiguous()


def leading_svd(
    a: torch.Tensor, k: int, mode: str, niter: int, oversample: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k leading singular triples of `a` (fp32): U (m×k), S (k), Vh (k×n)."""
    q = k + oversample
    if mode == "exact" and 0 < k < min(a.shape):
        out = gram_svd(a, k)
        if out is not None:
            return out
    if mode == "lowrank" and q < min(a.shape):
        u, s, vh = randomized_svd(a, q, niter, generator)
    else:
        u, s, vh = svd(a)
    return u[:, :k].contiguous(), s[:k].contiguous(), vh[:k].contiguous()


def polar(a: torch.Tensor, mode: str = "full") -> torch.Tensor:
    """Orthogonal polar factor P Qᵀ of a = P Σ Qᵀ (the nearest matrix with orthonormal
    columns, or rows when a is wide). `full`: by an SVD; otherwise a (aᵀa)^(-1/2) from the
    float64 eigendecomposition of the Gram matrix, unless that is numerically singular."""
    return polar_spectrum(a, mode)[0]


def polar_spectrum(a: torch.Tensor, mode: str = "full") -> tuple[torch.Tensor, torch.Tensor]:
    """`polar(a, mode)` and a's min(m, n) singular values (ascending from the Gram matrix,
    descending from the SVD), in a's dtype."""
    if mode != "full":
        wide = a.shape[0] < a.shape[1]
        lam, w = eigh_top(gram64(a.mT if wide else a))
        if lam[0] > GRAM_RTOL * lam[-1]:
            half = w * lam.pow(-0.25)  # (AᵀA)^(-1/2) = half·halfᵀ, a symmetric product
            inv_sqrt = matmul(half, half.mT).to(a.dtype)
            factor = matmul(inv_sqrt, a) if wide else matmul(a, inv_sqrt)
            return factor, lam.sqrt().to(a.dtype)
    p, s, qh = svd(a)
    return p @ qh, s


def tsv_components(
    ctx: TensorContext, deltas: list[torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TSV candidates: (U⊥ m×Tk, s Tk, V⊥ᵀ Tk×n) from each task's k leading components.
    Each task vector is dropped from `deltas` once decomposed (`consume`)."""
    mode, niter, over = ctx.params["svd"], ctx.params["niter"], ctx.params["oversample"]
    us, ss, vhs = [], [], []
    for u, s, vh in (
        leading_svd(d.to(torch.float32), k, mode, niter, over, ctx.generator(j))
        for j, d in consume(deltas)
    ):
        us.append(u)
        ss.append(s)
        vhs.append(vh)
    u_cat = torch.cat(us, dim=1)
    del us
    u_perp = polar(u_cat, mode)
    del u_cat
    vh_cat = torch.cat(vhs, dim=0)
    del vhs
    vh_perp = polar(vh_cat, mode)
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
        return ctx.task_vectors()

    def is_matrix(self, ctx: TensorContext) -> bool:
        return (
            ctx.base is not None
            and ctx.base.dim() == 2
            and not excluded(ctx.name, ctx.params["exclude"])
        )

    def matrix_update(self, ctx: TensorContext, deltas: list[torch.Tensor]) -> torch.Tensor:
        """The merged update of a 2-D tensor (fp32); it may free the task vectors as it goes
        (`consume`): the caller reads `deltas` no more."""
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
