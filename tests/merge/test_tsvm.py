"""TSVM and R-TSVM against hand-derived expectations on small matrices.

Diagonal task vectors have known SVDs (singular vectors = basis vectors), so every candidate,
weight and kept component can be written down by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from merge_helpers import merge_states

from mixmerge.merge.base import TensorContext
from mixmerge.merge.methods import tsvm
from mixmerge.merge.methods.r_tsvm import outlier_mass, selected_rank, sparsity
from mixmerge.merge.registry import METHODS

B = torch.full((4, 4), 0.5)
D1 = torch.diag(torch.tensor([3.0, 2.0, 0.5, 0.25]))  # top-2: 3·e1e1ᵀ + 2·e2e2ᵀ
D2 = torch.diag(torch.tensor([0.3, 0.2, 5.0, 4.0]))  # top-2: 5·e3e3ᵀ + 4·e4e4ᵀ
BIAS = torch.tensor([1.0, -1.0, 0.5])
DB1, DB2 = torch.tensor([0.2, 0.4, 0.1]), torch.tensor([-0.6, 0.1, 0.2])


def diag(*v: float) -> torch.Tensor:
    return torch.diag(torch.tensor(v, dtype=torch.float32))


def run(tmp_path: Path, method: str, params: dict | None = None, tag: str = "o", d1=D1, d2=D2):
    base = {"w": B, "b": BIAS}
    models = [{"w": B + d1, "b": BIAS + DB1}, {"w": B + d2, "b": BIAS + DB2}]
    got = merge_states(tmp_path, method, base, models, params=params, tag=tag)
    return got["w"] - B, got["b"] - BIAS


def close(got: torch.Tensor, want: torch.Tensor, tol: float = 2e-5) -> None:
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_tsvm_orthogonal_tasks(tmp_path: Path) -> None:
    # r = 4, T = 2: k = 2 per task; U_cat = [e1 e2 e3 e4] is orthonormal, its polar factor is
    # itself, so M = diag(3, 2, 5, 4). 1-D tensors: mean of the deltas.
    w, b = run(tmp_path, "tsvm")
    close(w, diag(3, 2, 5, 4))
    close(b, (DB1 + DB2) / 2)
    w, b = run(tmp_path, "tsvm", {"alpha": 0.5}, tag="a")
    close(w, 0.5 * diag(3, 2, 5, 4))
    close(b, 0.25 * (DB1 + DB2))


def test_tsvm_polar_decorrelates(tmp_path: Path) -> None:
    # rank-1 tasks in 2-D sharing a direction: δ1 = 3·e1e1ᵀ, δ2 = 2·uuᵀ, u = (e1 + e2)/√2.
    # U_cat = [e1 u] = V_cat; polar factor P = U_cat (U_catᵀ U_cat)^(-1/2) (computed here from
    # the 2×2 Gram matrix, not by SVD); M = P diag(3, 2) Pᵀ.
    u = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    d1 = 3 * torch.outer(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
    d2 = 2 * torch.outer(u, u)
    base = torch.zeros(2, 2)
    got = merge_states(tmp_path, "tsvm", {"w": base}, [{"w": d1}, {"w": d2}])["w"]
    cat = torch.stack([torch.tensor([1.0, 0.0]), u], dim=1).double()
    evals, evecs = torch.linalg.eigh(cat.T @ cat)  # Gram = [[1, c], [c, 1]], c = 1/√2
    p = cat @ evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    assert torch.allclose(p.T @ p, torch.eye(2, dtype=torch.float64))
    want = (p @ torch.diag(torch.tensor([3.0, 2.0], dtype=torch.float64)) @ p.T).float()
    close(got, want)
    assert not torch.allclose(want, d1 + d2, atol=1e-2)  # differs from task arithmetic


def test_tsvm_exclude_and_tiny_rank(tmp_path: Path) -> None:
    # excluded 2-D tensors take the mean path
    w, _ = run(tmp_path, "tsvm", {"exclude": ["w"]})
    close(w, (D1 + D2) / 2)
    # a [3, 1] matrix has r = 1 < T = 2 singular values: k = ⌊1/2⌋ = 0 components survive
    base = {"col": torch.zeros(3, 1)}
    got = merge_states(
        tmp_path, "tsvm", base, [{"col": torch.ones(3, 1)}, {"col": -torch.ones(3, 1)}], tag="k0"
    )
    close(got["col"], torch.zeros(3, 1))


def test_tsvm_lowrank_matches_exact_on_low_rank_tasks(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(64, 48, generator=gen)}
    # rank-12 task vectors (+ 1e-5 noise, so every singular vector is well defined):
    # k = 48 // 4 = 12 components hold them; the randomized SVD (q = 22 < 48) finds them
    models = [
        {
            "w": base["w"]
            + torch.randn(64, 12, generator=gen) @ torch.randn(12, 48, generator=gen)
            + 1e-5 * torch.randn(64, 48, generator=gen)
        }
        for _ in range(4)
    ]
    exact = merge_states(tmp_path, "tsvm", base, models, tag="e")["w"]
    low = merge_states(
        tmp_path, "tsvm", base, models, params={"svd": "lowrank", "oversample": 10}, tag="l"
    )["w"]
    close(low, exact, 1e-4)


orig64 = tsvm.gram_svd64


@pytest.mark.parametrize("steep", [False, True])
def test_gram_svd_leading_triples(monkeypatch: pytest.MonkeyPatch, steep: bool) -> None:
    """The oversampled float32 eigensolve + float64 Rayleigh–Ritz (q = k + 128 < n) gives a
    float64 SVD's k leading triples, tall and wide; a task whose σ_k is under 1e-2·σ_1, or a
    Gram matrix under FP32_GRAM_MIN wide, is solved by the float64 eigensolve instead (and
    still matches)."""
    gen = torch.Generator().manual_seed(11)
    decay = 10.0 ** (-12 * torch.arange(200) / 200) if steep else 1 / (1 + torch.arange(200))
    left = torch.linalg.qr(torch.randn(230, 200, generator=gen, dtype=torch.float64)).Q
    right = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=torch.float64)).Q
    a = ((left * decay.double()) @ right.T).float()
    k = 40  # T = 5: q = 168 < 200
    calls: list[int] = []
    monkeypatch.setattr(tsvm, "gram_svd64", lambda x, k: calls.append(k) or orig64(x, k))
    monkeypatch.setattr(tsvm, "FP32_GRAM_MIN", 200)  # the float32 path from 200 wide on
    for mat in (a, a.mT):
        u, s, vh = tsvm.gram_svd(mat, k)
        want_u, want_s, want_vh = torch.linalg.svd(mat.double(), full_matrices=False)
        torch.testing.assert_close(s.double(), want_s[:k], rtol=1e-6, atol=0)
        low = (want_u[:, :k] * want_s[:k]) @ want_vh[:k]
        # 7e-8 here (the float32 outputs' rounding); without the oversampled basis, 3e-7
        torch.testing.assert_close((u * s).double() @ vh.double(), low, rtol=0, atol=1.5e-7)
    assert calls == ([k, k] if steep else [])
    monkeypatch.setattr(tsvm, "FP32_GRAM_MIN", 201)  # a narrower Gram matrix: float64
    tsvm.gram_svd(a, k)
    assert calls[-1:] == [k] and len(calls) == (3 if steep else 1)


@pytest.mark.parametrize("method", ["tsvm", "r_tsvm"])
def test_gram_path_is_the_full_svd_path(tmp_path: Path, method: str) -> None:
    """`svd: exact` (Gram eigendecompositions in float64) gives `svd: full`'s merge (one LAPACK
    SVD per task and polar factor): on well-conditioned tasks, tall and wide; and on a task of
    rank 1 < k = 2 and a zero task vector, where the Gram path hands over to the full SVD."""
    gen = torch.Generator().manual_seed(5)
    base = {"tall": torch.randn(24, 10, generator=gen), "wide": torch.randn(9, 16, generator=gen)}
    models = [
        {n: t + 0.05 * torch.randn(t.shape, generator=gen) for n, t in base.items()}
        for _ in range(3)
    ]
    rank_one = 0.1 * torch.outer(torch.randn(24, generator=gen), torch.randn(10, generator=gen))
    base["deficient"] = base["tall"].clone()
    for model, delta in zip(
        models, (rank_one, torch.zeros(24, 10), 0.1 * base["tall"]), strict=True
    ):
        model["deficient"] = base["deficient"] + delta
    exact = merge_states(tmp_path, method, base, models, params={"svd": "exact"}, tag="e")
    full = merge_states(tmp_path, method, base, models, params={"svd": "full"}, tag="f")
    for name in base:
        close(exact[name], full[name], 1e-5)
    assert not torch.equal(exact["tall"], base["tall"])


def test_r_tsvm_identity_with_tsvm(tmp_path: Path) -> None:
    """weighting none + rank_selection false + scale a ≡ TSVM with alpha a, byte for byte."""
    gen = torch.Generator().manual_seed(3)
    base = {
        "a.weight": torch.randn(12, 10, generator=gen),
        "a.bias": torch.randn(10, generator=gen),
    }
    models = [
        {n: t + 0.1 * torch.randn(t.shape, generator=gen) for n, t in base.items()}
        for _ in range(3)
    ]
    merge_states(tmp_path, "tsvm", base, models, params={"alpha": 0.7}, tag="tsvm")
    merge_states(
        tmp_path,
        "r_tsvm",
        base,
        models,
        params={"weighting": "none", "rank_selection": False, "scale": 0.7},
        tag="rtsvm",
    )
    assert (tmp_path / "tsvm/model.safetensors").read_bytes() == (
        tmp_path / "rtsvm/model.safetensors"
    ).read_bytes()


# --- R-TSVM: (a) outlier weights ------------------------------------------------------------

# n = 20 rows. Row A: 19 × 0.1 and one 4.0: μ = 0.295, σ² = 0.8095 − 0.295² = 0.722475,
# μ + 3σ = 2.845 -> only 4.0 counts: T = 4. Row C: 18 × 0.1, 2.0, 3.0: μ = 0.34,
# σ² = 0.659 − 0.1156 = 0.5434, μ + 3σ = 2.551 -> only 3.0 counts: T = 3.
ROW_A = torch.tensor([0.1] * 19 + [4.0])
ROW_C = torch.tensor([0.1] * 18 + [2.0, 3.0])


def test_outlier_mass_hand_computed() -> None:
    assert outlier_mass(ROW_A, 3.0) == pytest.approx(4.0)
    assert outlier_mass(-ROW_C, 3.0) == pytest.approx(3.0)  # |δ| counts, not δ
    assert outlier_mass(torch.stack([ROW_A, ROW_C]), 3.0) == pytest.approx(7.0)  # per row
    # the same rows as one flattened row would have other statistics: 2-D is per row
    assert outlier_mass(torch.cat([ROW_A, ROW_C]), 3.0) == pytest.approx(7.0)
    # a 4-entry row's single spike is only √3 σ above the mean: nothing counts at 3σ, all at 1σ
    spike = torch.tensor([0.0, 0.0, 0.0, 4.0])
    assert outlier_mass(spike, 3.0) == 0.0
    assert outlier_mass(spike, 1.0) == pytest.approx(4.0)


def test_r_tsvm_outlier_weights_on_vectors(tmp_path: Path) -> None:
    base = {"v": torch.zeros(20)}
    models = [{"v": ROW_A}, {"v": -ROW_C}]
    got = merge_states(tmp_path, "r_tsvm", base, models, params={"scale": 2.0})["v"]
    close(got, 2.0 * (4 / 7 * ROW_A - 3 / 7 * ROW_C))  # α = T / ΣT = 4/7, 3/7
    got = merge_states(tmp_path, "r_tsvm", base, models, {}, {"weighting": "uniform"}, tag="u")
    close(got["v"], (ROW_A - ROW_C) / 2)
    # every Tᵢ = 0 (no outliers at 3σ): uniform weights
    spikes = [{"v": torch.tensor([0.0, 0.0, 0.0, 4.0])}, {"v": torch.tensor([2.0, 0.0, 0.0, 0.0])}]
    got = merge_states(tmp_path, "r_tsvm", {"v": torch.zeros(4)}, spikes, tag="z")["v"]
    close(got, torch.tensor([1.0, 0.0, 0.0, 2.0]))


def test_r_tsvm_outlier_weights_on_matrices(tmp_path: Path) -> None:
    # k_sigma = 1: in a 4-entry row with one nonzero x, μ = x/4, σ = x·√3/4, μ + σ ≈ 0.68x,
    # so every diagonal entry counts: T1 = 3 + 2 + .5 + .25 = 5.75, T2 = .3 + .2 + 5 + 4 = 9.5
    a1, a2 = 5.75 / 15.25, 9.5 / 15.25
    p = {"k_sigma": 1.0, "rank_selection": False}
    w, b = run(tmp_path, "r_tsvm", p)
    close(w, diag(3 * a1, 2 * a1, 5 * a2, 4 * a2))
    # vectors use the same statistic (one row each, k_sigma = 1): |DB1| = [.2, .4, .1]:
    # μ + σ = .233 + .125 = .358 -> only .4 counts; |DB2| = [.6, .1, .2]: μ + σ = .3 + .216
    # -> only .6 counts: α = (.4, .6)
    close(b, (0.4 * DB1 + 0.6 * DB2) / 1.0)
    # uniform: every singular value halved
    w, _ = run(tmp_path, "r_tsvm", {"weighting": "uniform", "rank_selection": False}, tag="u")
    close(w, diag(1.5, 1.0, 2.5, 2.0))


# --- R-TSVM: (b) sparsity-adaptive rank and (e) selection -----------------------------------


@pytest.mark.parametrize(
    ("gamma", "want"),
    [
        # absolute ε = 0.1: 12 of 16 entries of each δ are 0 -> Ω = 24/32 = 0.75
        (0.5, diag(0, 0, 5, 4)),  # k_l = ⌊4·(1 − 0.375)⌋ = 2: keep σ̃ = 5, 4
        (0.25, diag(3, 0, 5, 4)),  # ⌊4·0.8125⌋ = 3: keep 5, 4, 3
        (0.0, diag(3, 2, 5, 4)),  # k_l = r = 4 = T·k0: keep all
        (2.0, diag(0, 0, 5, 0)),  # ⌊4·(1 − 1.5)⌋ < 1 -> k_l = 1
    ],
)
def test_r_tsvm_rank_selection(tmp_path: Path, gamma: float, want: torch.Tensor) -> None:
    p = {"weighting": "none", "epsilon_mode": "absolute", "epsilon": 0.1, "gamma": gamma}
    w, b = run(tmp_path, "r_tsvm", p)
    close(w, want)
    close(b, (DB1 + DB2) / 2)  # weighting none: vectors averaged as in TSVM


def test_r_tsvm_relative_epsilon(tmp_path: Path) -> None:
    # epsilon 0.4, gamma 0.32.  absolute: ε_abs = 0.4 -> δ1 adds 0.25, δ2 adds 0.3 and 0.2 to
    # the 24 zeros: Ω = 27/32, k_l = ⌊4·(1 − 0.27)⌋ = 2.  relative: ε_abs = 0.4 · mean of
    # mean|δ| = 0.4 · (5.75/16 + 9.5/16)/2 = 0.190625 -> zeros only: Ω = 0.75,
    # k_l = ⌊4·(1 − 0.24)⌋ = 3.
    p = {"weighting": "none", "epsilon": 0.4, "gamma": 0.32}
    close(run(tmp_path, "r_tsvm", p | {"epsilon_mode": "absolute"}, tag="a")[0], diag(0, 0, 5, 4))
    close(run(tmp_path, "r_tsvm", p, tag="r")[0], diag(3, 0, 5, 4))  # relative is the default


def test_r_tsvm_selection_uses_reweighted_values(tmp_path: Path) -> None:
    # k_sigma 1 weights α = (5.75, 9.5)/15.25 and Ω = 0.75 with gamma 0.25 -> keep 3 of
    # σ̃ = [3α1, 2α1, 5α2, 4α2] = [1.13, 0.75, 3.11, 2.49]: drops 2α1
    a1, a2 = 5.75 / 15.25, 9.5 / 15.25
    p = {"k_sigma": 1.0, "gamma": 0.25, "epsilon_mode": "absolute", "scale": 3.0}
    w, _ = run(tmp_path, "r_tsvm", p)
    close(w, 3.0 * diag(3 * a1, 0, 5 * a2, 4 * a2))
    # δ2 = diag(.3, .2, 2.5, 2.1): by s the kept three are 3, 2.5, 2.1 (dropping task 1's 2);
    # with α = (5.75, 5.1)/10.85, σ̃ = [1.590, 1.060, 1.175, 0.987]: task 2's 2.1 goes instead
    d2 = diag(0.3, 0.2, 2.5, 2.1)
    b1, b2 = 5.75 / 10.85, 5.1 / 10.85
    w, _ = run(tmp_path, "r_tsvm", p | {"scale": 1.0}, tag="b", d2=d2)
    close(w, diag(3 * b1, 2 * b1, 2.5 * b2, 0))
    w, _ = run(tmp_path, "r_tsvm", p | {"scale": 1.0, "weighting": "none"}, tag="c", d2=d2)
    close(w, diag(3, 0, 2.5, 2.1))


def rank_ctx(deltas: list[torch.Tensor], **params: object) -> TensorContext:
    p = {q.name: q.default for q in METHODS["r_tsvm"].global_params} | params
    return TensorContext(
        name="w",
        tensors=deltas,
        model_params=[{}] * len(deltas),
        params=p,
        base=torch.zeros_like(deltas[0]),
        model_indices=list(range(len(deltas))),
        model_labels=[str(i) for i in range(len(deltas))],
        seed=0,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )


def test_sparsity_and_selected_rank_helpers() -> None:
    assert sparsity(rank_ctx([D1, D2], epsilon_mode="absolute", epsilon=0.1), [D1, D2]) == 0.75
    assert sparsity(rank_ctx([D1, D2], epsilon_mode="absolute", epsilon=0.4), [D1, D2]) == 27 / 32
    assert sparsity(rank_ctx([D1, D2], epsilon=0.4), [D1, D2]) == 0.75
    assert selected_rank(4096, 0.5, 0.5) == 3072
    assert selected_rank(10, 1.0, 0.95) == 1  # ⌊0.5⌋ = 0 -> at least 1
    assert selected_rank(7, 0.0, 1.0) == 7


def test_svd_retries_by_gesvd_when_gesdd_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """gesdd's "failed to converge" (seen on Iso-CTS' projected task vectors) is retried by
    LAPACK's gesvd in float64 instead of ending the merge."""
    from mixmerge.merge.methods import tsvm

    a = torch.randn(40, 24, generator=torch.Generator().manual_seed(3))
    want = torch.linalg.svd(a, full_matrices=False)

    def fails(*args: object, **kwargs: object) -> None:
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", fails)
    u, s, vh = tsvm.svd(a)
    assert u.dtype == s.dtype == vh.dtype == torch.float32
    assert torch.allclose(s, want.S, rtol=1e-5)
    assert torch.allclose((u * s) @ vh, a, atol=1e-5)
    assert torch.allclose(u.mT @ u, torch.eye(24), atol=1e-5)
