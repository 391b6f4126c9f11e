"""Iso-C, Iso-CTS and TSV-C (fusion_bench 0.2.33's SVD family) against hand-derived values and
against fusion_bench's own formulas, transcribed below from isotropic_merging/iso_utils.py and
task_singular_vector/utils/TSVC_utils.py (fusion_bench itself needs lightning etc. to import).

Diagonal task vectors have known SVDs (singular vectors = basis vectors), so the common and
task-specific subspaces, and every flattened spectrum, can be written down by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from merge_helpers import merge_states

from mixmerge.merge import METHOD_NAMES, MergeError
from mixmerge.merge.methods.iso import decomposition, iso_cts_split
from mixmerge.merge.methods.tsv_c import compressed_rank

B = torch.full((4, 4), 0.5)
D1 = torch.diag(torch.tensor([3.0, 2.0, 0.5, 0.25]))
D2 = torch.diag(torch.tensor([0.2, 0.3, 5.0, 4.0]))
BIAS = torch.tensor([1.0, -1.0, 0.5])
DB1, DB2 = torch.tensor([0.2, 0.4, 0.1]), torch.tensor([-0.6, 0.1, 0.2])


def run(tmp_path: Path, method: str, params: dict | None = None, tag: str = "o"):
    base = {"w": B, "b": BIAS}
    models = [{"w": B + D1, "b": BIAS + DB1}, {"w": B + D2, "b": BIAS + DB2}]
    got = merge_states(tmp_path, method, base, models, params=params, tag=tag)
    return got["w"] - B, got["b"] - BIAS


def close(got: torch.Tensor, want: torch.Tensor, tol: float = 2e-5) -> None:
    torch.testing.assert_close(got, want.to(got.dtype), rtol=tol, atol=tol)


def random_task(shapes: dict, tasks: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    base = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    models = [
        {n: t + 0.3 * torch.randn(t.shape, generator=gen) for n, t in base.items()}
        for _ in range(tasks)
    ]
    return base, models


# --- fusion_bench's formulas, transcribed (float64, its loop structure and slicing) ---------


def fb_iso_c(tvs: list[torch.Tensor]) -> torch.Tensor:
    new = sum(tvs) / len(tvs)
    if new.dim() == 2:
        new = new * len(tvs)
        u, s, v = torch.linalg.svd(new, full_matrices=False)
        new = torch.linalg.multi_dot((u, torch.diag(torch.ones_like(s) * s.mean()), v))
    return new


def fb_iso_cts(tvs: list[torch.Tensor], fraction: float) -> torch.Tensor:
    shape, t = tvs[0].shape, len(tvs)
    c = int(min(shape) * fraction)
    c = min(shape) - round((min(shape) - c) / t) * t
    u, s, v = torch.linalg.svd(sum(tvs), full_matrices=False)
    cu, cs, cv = u[:, :c], s[:c], v[:c, :]
    k = int((min(shape) - c) / t)
    for i, w in enumerate(tvs):
        u_ts, s_ts, v_ts = torch.linalg.svd(w - cu @ cu.T @ w, full_matrices=False)
        if i == 0:
            all_u, all_s, all_v = (torch.zeros_like(x) for x in (u_ts, s_ts, v_ts))
        all_u[:, i * k : (i + 1) * k] = u_ts[:, :k]
        all_s[i * k : (i + 1) * k] = s_ts[:k]
        all_v[i * k : (i + 1) * k, :] = v_ts[:k, :]
    all_u[:, t * k : t * k + c], all_s[t * k : t * k + c], all_v[t * k : t * k + c, :] = cu, cs, cv
    pu, _, qu = torch.linalg.svd(all_u, full_matrices=False)
    pv, _, qv = torch.linalg.svd(all_v, full_matrices=False)
    flat = torch.diag(torch.ones_like(all_s) * all_s.mean())
    return torch.linalg.multi_dot((pu @ qu, flat, pv @ qv))


def fb_compress(tv: torch.Tensor, sv_reduction: float) -> torch.Tensor:
    if tv.dim() != 2:
        return tv  # "dim1"
    u, s, v = torch.linalg.svd(tv, full_matrices=False)
    k = int(s.shape[0] * sv_reduction)
    return u[:, :k] @ torch.diag(s[:k]) @ v[:k, :]


def test_the_family_is_registered() -> None:
    # the registry-driven tests (robustness, registry, merge_bench) iterate METHOD_NAMES
    assert {"iso_c", "iso_cts", "tsv_c"} <= set(METHOD_NAMES)


# --- Iso-C ----------------------------------------------------------------------------------


def test_iso_c_by_hand(tmp_path: Path) -> None:
    # Σδ = diag(3.2, 2.3, 5.5, 4.25): U Vᵀ = I, s̄ = 15.25 / 4; 1-D tensors: the mean
    w, b = run(tmp_path, "iso_c")
    close(w, 3.8125 * torch.eye(4))
    close(b, (DB1 + DB2) / 2)
    w, b = run(tmp_path, "iso_c", {"scaling_factor": 2.0}, tag="s")
    close(w, 7.625 * torch.eye(4))
    close(b, DB1 + DB2)
    w, _ = run(tmp_path, "iso_c", {"exclude": ["w"]}, tag="x")
    close(w, (D1 + D2) / 2)


def test_iso_c_rank_one_flattens_over_the_full_rank(tmp_path: Path) -> None:
    # Σδ = 4·e1e2ᵀ (rank 1 in 2×2): s = (4, 0), s̄ = 2; the null-space pair (±e2, ±e1) gets
    # weight 2 too: M = 2·(e1e2ᵀ ± e2e1ᵀ), the sign being the solver's (as in fusion_bench)
    d = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    got = merge_states(tmp_path, "iso_c", {"w": torch.zeros(2, 2)}, [{"w": d}, {"w": d}])["w"]
    close(got[0], torch.tensor([0.0, 2.0]))
    close(got[1].abs(), torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize("svd", ["exact", "full"])
@pytest.mark.parametrize("shape", [(6, 4), (4, 7)])
def test_iso_c_matches_fusion_bench(tmp_path: Path, shape: tuple[int, int], svd: str) -> None:
    base, models = random_task({"w": shape, "b": (shape[0],)}, 3, seed=1)
    params = {"scaling_factor": 1.3, "svd": svd}
    got = merge_states(tmp_path, "iso_c", base, models, params=params)
    for n in base:
        want = fb_iso_c([(m[n] - base[n]).double() for m in models])
        close(got[n] - base[n], 1.3 * want, 1e-4)


# --- Iso-CTS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "tasks", "fraction", "want"),
    [
        (4, 2, 0.5, (2, 1)),
        (10, 3, 0.8, (7, 1)),  # c₀ = 8, round(2/3)·3 = 3 task-specific
        (14, 4, 0.8, (10, 1)),  # 14·0.8 = 11.200000000000001 -> c₀ = 11, round(0.75) = 1
        (50, 4, 0.8, (42, 2)),  # round(2.5) = 2: half to even, as Python's round
        (10, 4, 0.8, (10, 0)),  # round(0.5) = 0: no task-specific space
        (4, 1, 0.8, (3, 1)),  # one task: c₀ = 3, t = 1
        (3, 2, 0.0, (1, 1)),  # round(1.5)·2 = 4 > r: fusion_bench fails, here t = 2
        (7, 2, 1.0, (7, 0)),
        (100, 3, 0.29, (28, 24)),  # int(28.999999999999996) = 28, as fusion_bench
    ],
)
def test_iso_cts_split(r: int, tasks: int, fraction: float, want: tuple[int, int]) -> None:
    assert iso_cts_split(r, tasks, fraction) == want
    c, k = want
    assert tasks * k + c == r


def test_iso_cts_by_hand(tmp_path: Path) -> None:
    # r = 4, T = 2, fraction 0.5: c = 2, k = 1. Σδ = diag(3.2, 2.3, 5.5, 4.25): common space
    # e3, e4 (5.5, 4.25). δ1 without e3, e4 = diag(3, 2, 0, 0): top e1 (3); δ2's rest
    # diag(.2, .3, 0, 0): top e2 (0.3). U_cat = [e1 e2 e3 e4] is orthonormal: M = s̄·I,
    # s̄ = (3 + 0.3 + 5.5 + 4.25) / 4
    w, b = run(tmp_path, "iso_cts", {"common_space_fraction": 0.5})
    close(w, 3.2625 * torch.eye(4))
    close(b, (DB1 + DB2) / 2)
    # default 0.8: c₀ = 3, t = round(1/2)·2 = 0 -> all common: Iso-C's 3.8125·I
    w, b = run(tmp_path, "iso_cts", {"scaling_factor": 0.5}, tag="d")
    close(w, 0.5 * 3.8125 * torch.eye(4))
    close(b, (DB1 + DB2) / 4)


@pytest.mark.parametrize("svd", ["exact", "full"])
@pytest.mark.parametrize(("shape", "fraction"), [((12, 10), 0.8), ((10, 12), 0.5), ((9, 9), 0.3)])
def test_iso_cts_matches_fusion_bench(
    tmp_path: Path, shape: tuple[int, int], fraction: float, svd: str
) -> None:
    base, models = random_task({"w": shape, "b": (shape[0],)}, 3, seed=2)
    params = {"common_space_fraction": fraction, "svd": svd}
    got = merge_states(tmp_path, "iso_cts", base, models, params=params)
    close(got["w"] - base["w"], fb_iso_cts([(m["w"] - base["w"]).double() for m in models], fraction), 1e-4)  # fmt: skip
    close(got["b"] - base["b"], sum(m["b"] - base["b"] for m in models) / 3)


def test_auto_takes_the_gram_path_on_wide_or_elongated_matrices() -> None:
    assert decomposition((1024, 1024), "auto") == "full"
    assert decomposition((2816, 1024), "auto") == "full"
    assert decomposition((1024, 4096), "auto") == "exact"  # 4x as long as wide
    assert decomposition((32000, 1024), "auto") == "exact"  # an embedding
    assert decomposition((4096, 4096), "auto") == "exact"  # 8B-sized
    assert decomposition((32000, 1024), "full") == "full"
    assert decomposition((8, 8), "exact") == "exact"


def test_iso_cts_all_common_is_iso_c(tmp_path: Path) -> None:
    base, models = random_task({"w": (8, 6)}, 2, seed=3)
    a = merge_states(tmp_path, "iso_cts", base, models, params={"common_space_fraction": 1.0})
    b = merge_states(tmp_path, "iso_c", base, models, tag="c")
    close(a["w"], b["w"], 1e-5)


# --- TSV-C ----------------------------------------------------------------------------------


def test_tsv_c_by_hand(tmp_path: Path) -> None:
    # T = 2, r = 4: k = 2 leading components of the chosen task; 1-D: its whole delta
    w, b = run(tmp_path, "tsv_c")
    close(w, torch.diag(torch.tensor([3.0, 2.0, 0.0, 0.0])))
    close(b, DB1)
    w, b = run(tmp_path, "tsv_c", {"task": 1, "alpha": 0.5}, tag="t1")
    close(w, torch.diag(torch.tensor([0.0, 0.0, 2.5, 2.0])))
    close(b, 0.5 * DB2)
    w, _ = run(tmp_path, "tsv_c", {"sv_reduction": 0.25}, tag="q")  # k = 1
    close(w, torch.diag(torch.tensor([3.0, 0.0, 0.0, 0.0])))
    w, _ = run(tmp_path, "tsv_c", {"sv_reduction": 0.7, "task": 1}, tag="f")  # int(2.8) = 2
    close(w, torch.diag(torch.tensor([0.0, 0.0, 5.0, 4.0])))
    w, _ = run(tmp_path, "tsv_c", {"exclude": ["w"]}, tag="x")
    close(w, D1)


def test_tsv_c_rank() -> None:
    assert compressed_rank(4096, 8, None) == 512
    assert compressed_rank(49, 49, None) == 1  # int(49 · (1/49)) would be 0
    assert compressed_rank(100, 3, 0.29) == 28  # int(28.999999999999996), as fusion_bench
    assert compressed_rank(3, 4, None) == 0


@pytest.mark.parametrize("shape", [(7, 5), (5, 8)])
def test_tsv_c_matches_fusion_bench(tmp_path: Path, shape: tuple[int, int]) -> None:
    base, models = random_task({"w": shape, "b": (shape[0],)}, 3, seed=4)
    for task in range(3):
        got = merge_states(tmp_path, "tsv_c", base, models, params={"task": task}, tag=str(task))
        for n in base:
            close(got[n] - base[n], fb_compress((models[task][n] - base[n]).double(), 1 / 3), 1e-4)  # fmt: skip


def test_tsv_c_one_model_with_a_fraction(tmp_path: Path) -> None:
    # listing only the chosen model with sv_reduction 1/T writes what listing all T does
    base, models = random_task({"w": (8, 6), "b": (8,)}, 2, seed=5)
    full = merge_states(tmp_path, "tsv_c", base, models, params={"task": 1}, tag="a")
    one = merge_states(tmp_path, "tsv_c", base, models[1:], params={"sv_reduction": 0.5}, tag="b")
    assert all(torch.equal(full[n], one[n]) for n in base)
    # a [3, 1] matrix with T = 2: k = 0 components, the base's tensor
    col = {"col": torch.ones(3, 1)}
    got = merge_states(tmp_path, "tsv_c", col, [{"col": 2 * col["col"]}] * 2, tag="k0")
    assert torch.equal(got["col"], col["col"])


def test_tsv_c_lowrank_matches_exact_on_a_low_rank_task(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(6)
    base = {"w": torch.randn(48, 40, generator=gen)}
    low_rank = torch.randn(48, 10, generator=gen) @ torch.randn(10, 40, generator=gen)
    models = [{"w": base["w"] + low_rank}, {"w": base["w"] + torch.randn(48, 40, generator=gen)}]
    p = {"sv_reduction": 0.25}  # k = 10
    exact = merge_states(tmp_path, "tsv_c", base, models, params=p, tag="e")["w"]
    low = merge_states(
        tmp_path, "tsv_c", base, models, params={**p, "svd": "lowrank", "oversample": 10}, tag="l"
    )
    close(low["w"], exact, 1e-4)
    close(exact - base["w"], low_rank, 1e-4)


# --- bad inputs -----------------------------------------------------------------------------

W = {"w": torch.ones(2, 2)}
BAD = [
    ("iso_c", {"scaling_factor": -1.0}, r"'scaling_factor' .* = -1.0 out of range \(\[0, inf\)\)"),
    ("iso_cts", {"common_space_fraction": 1.5}, r"'common_space_fraction' .* out of range \(\[0, 1\]\)"),
    ("iso_cts", {"common_space_fraction": "most"}, r"'common_space_fraction' .* must be a number"),
    ("tsv_c", {"sv_reduction": 0.0}, r"'sv_reduction' .* = 0.0 out of range \(\(0, 1\]\)"),
    ("tsv_c", {"sv_reduction": 1.5}, r"'sv_reduction' .* out of range"),
    ("tsv_c", {"task": 2}, r"tsv_c: task 2 at tensor w is out of range: 2 model\(s\) besides the base"),
    ("tsv_c", {"task": -1}, r"'task' .* = -1 out of range"),
    ("tsv_c", {"task": 0.5}, r"'task' .* must be an integer"),
    ("tsv_c", {"svd": "fast"}, r"'svd' .* must be one of exact, full, lowrank"),
    ("iso_c", {"svd": "lowrank"}, r"'svd' .* must be one of auto, exact, full"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "params", "match"), BAD)
def test_bad_parameters(tmp_path: Path, method: str, params: dict, match: str) -> None:
    with pytest.raises(MergeError, match=match):
        merge_states(tmp_path, method, W, [W, W], params=params)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["iso_c", "iso_cts", "tsv_c"])
def test_bad_inputs(tmp_path: Path, method: str) -> None:
    nan = {"w": torch.tensor([[1.0, math.nan], [0.0, 1.0]])}
    with pytest.raises(MergeError, match="non-finite values .* in tensor w of model"):
        merge_states(tmp_path, method, W, [W, nan], tag="nan")  # task 0 is fine, model 1 not
    with pytest.raises(MergeError, match="shape mismatch for tensor w"):
        merge_states(tmp_path, method, W, [W, {"w": torch.ones(2, 3)}], tag="shape")
    with pytest.raises(MergeError, match="tensor x missing from model"):
        merge_states(tmp_path, method, {**W, "x": torch.ones(2)}, [W], tag="missing")
    with pytest.raises(MergeError, match=f"merge_method {method} requires base_model"):
        merge_states(tmp_path, method, None, [W, W], tag="nobase")
    assert not any((tmp_path / t).exists() for t in ("nan", "shape", "missing", "nobase"))
