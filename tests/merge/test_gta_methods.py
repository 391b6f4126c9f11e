"""TIES, DARE, DELLA and Breadcrumbs (MergeKit's generalized task arithmetic family).

Expected values are derived by hand in the comments, or by small independent computations
(the documented RNG contract: mask = U[0,1) draws of tensor_generator(seed, name, index) < p).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from merge_helpers import merge_states

from mixmerge.merge import tensor_generator
from mixmerge.merge.registry import METHODS


def close(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-6) -> None:
    torch.testing.assert_close(got, want.to(got.dtype), rtol=tol, atol=tol)


# --- MergeKit's documented defaults ---------------------------------------------------------

DEFAULTS = {
    # method: (consensus, normalize, rescale, extra per-model params)
    "task_arithmetic": (None, False, False, {}),
    "ties": ("sum", True, False, {}),
    "dare_ties": ("sum", False, True, {}),
    "dare_linear": (None, False, True, {}),
    "breadcrumbs": (None, False, False, {"gamma": 0.01}),
    "breadcrumbs_ties": ("sum", False, False, {"gamma": 0.01}),
    "della": ("sum", True, True, {"epsilon": 0.15}),
    "della_linear": (None, False, True, {"epsilon": 0.15}),
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_mergekit_defaults(name: str) -> None:
    consensus, normalize, rescale, extra = DEFAULTS[name]
    cls = METHODS[name]
    assert cls.consensus == consensus
    g = {p.name: p.default for p in cls.global_params}
    assert (g["normalize"], g["rescale"], g["lambda"], g["int8_mask"]) == (
        normalize,
        rescale,
        1.0,
        False,
    )
    m = {p.name: p for p in cls.model_params}
    assert m["weight"].required and m["density"].default == 1.0
    assert {k: m[k].default for k in extra} == extra
    assert set(m) == {"weight", "density", *extra}
    random = name.startswith(("dare", "della"))
    assert cls.uses_rng == random
    assert ("rescale_mode" in g) == random and g.get("rescale_mode", "l1") == "l1"


# --- TIES -----------------------------------------------------------------------------------

BASE = torch.tensor([0.5, -1.0, 2.0, 0.0])
D1 = torch.tensor([1.0, -2.0, 3.0, -0.5])
D2 = torch.tensor([-1.5, 1.0, 2.0, 0.2])


def ties(tmp_path: Path, params: dict | None = None, density: float = 0.5, tag: str = "o"):
    return merge_states(
        tmp_path,
        "ties",
        {"w": BASE},
        [{"w": BASE + D1}, {"w": BASE + D2}],
        [{"weight": 1.0, "density": density}, {"weight": 0.5, "density": density}],
        params,
        tag=tag,
    )["w"]


def test_ties_hand_computed(tmp_path: Path) -> None:
    # top-2 |δ|: δ1 -> [0, -2, 3, 0]; δ2 -> [-1.5, 0, 2, 0]; weighted: w2·δ2 = [-0.75, 0, 1, 0]
    # Σ = [-0.75, -2, 4, 0] -> majority signs [-, -, +, + (0 counts as +)]
    # agreeing: model 1 at [1, 2], model 2 at [0, 2]  (a zero entry agrees with nothing)
    # mixed = [-0.75, -2, 4, 0]; divisor = Σ agreeing weights = [0.5, 1, 1.5, 0 -> 1]
    close(ties(tmp_path), BASE + torch.tensor([-1.5, -2.0, 4 / 1.5, 0.0]))
    close(
        ties(tmp_path, {"normalize": False}, tag="n"), BASE + torch.tensor([-0.75, -2.0, 4.0, 0.0])
    )
    close(
        ties(tmp_path, {"lambda": 0.5}, tag="l"),
        BASE + 0.5 * torch.tensor([-1.5, -2.0, 4 / 1.5, 0.0]),
    )


def test_ties_l1_rescale(tmp_path: Path) -> None:
    # rescale: kept entries × ‖δ‖₁ / ‖kept‖₁: δ1 × 6.5/5, δ2 × 4.7/3.5
    k1 = torch.tensor([0.0, -2.0, 3.0, 0.0]) * (6.5 / 5)
    k2 = torch.tensor([-1.5, 0.0, 2.0, 0.0]) * (4.7 / 3.5)
    mixed = torch.tensor([0.5 * k2[0], k1[1], k1[2] + 0.5 * k2[2], 0.0])
    div = torch.tensor([0.5, 1.0, 1.5, 1.0])
    close(ties(tmp_path, {"rescale": True}), BASE + mixed / div, 1e-5)


def test_ties_density_one_is_sign_election_only(tmp_path: Path) -> None:
    # no sparsification: Σ wδ = [1 - .75, -2 + .5, 3 + 1, -.5 + .1] = [.25, -1.5, 4, -.4]
    # majority [+, -, +, -]: model 1 agrees everywhere, model 2 (w·δ2 = [-.75, .5, 1, .1])
    # only at 2
    mixed = torch.tensor([1.0, -2.0, 3.0 + 1.0, -0.5])
    div = torch.tensor([1.0, 1.0, 1.5, 1.0])
    close(ties(tmp_path, density=1.0), BASE + mixed / div)


def test_ties_ties_and_empty_top_k(tmp_path: Path) -> None:
    # equal magnitudes: the lower index wins (deterministic; MergeKit's choice is arbitrary)
    d = torch.tensor([1.0, -1.0, 1.0, 0.5])
    one = [{"weight": 1.0, "density": 0.5}]
    got = merge_states(tmp_path, "ties", {"w": BASE}, [{"w": BASE + d}], one, tag="a")["w"]
    close(got, BASE + torch.tensor([1.0, -1.0, 0.0, 0.0]))
    # int(0.1 · 4) = 0 kept (MergeKit asserts k > 0): the task vector is dropped
    tiny = [{"weight": 1.0, "density": 0.1}]
    got = merge_states(tmp_path, "ties", {"w": BASE}, [{"w": BASE + d}], tiny, tag="b")["w"]
    close(got, BASE)


# --- Breadcrumbs ----------------------------------------------------------------------------

# |δ| = 0.1 .. 1.0 in shuffled positions, alternating signs
MAGS = torch.tensor([0.3, 1.0, 0.5, 0.1, 0.9, 0.2, 0.7, 0.4, 0.8, 0.6])
DB = MAGS * torch.tensor([1.0, -1.0] * 5)
B0 = torch.full((10,), 0.25)


def crumbs(tmp_path: Path, density: float, gamma: float, tag: str) -> torch.Tensor:
    p = [{"weight": 1.0, "density": density, "gamma": gamma}]
    return merge_states(tmp_path, "breadcrumbs", {"w": B0}, [{"w": B0 + DB}], p, tag=tag)["w"]


def kept(lo: float, hi: float) -> torch.Tensor:
    return DB * ((lo - 1e-6 < MAGS) & (hi + 1e-6 > MAGS))


@pytest.mark.parametrize(
    ("density", "gamma", "lo", "hi"),
    [
        (0.5, 0.1, 0.5, 0.9),  # n_top = 1, n_bot = 10 - 5 - 1 = 4: drop 0.1-0.4 and 1.0
        (0.5, 0.01, 0.6, 1.0),  # n_top = int(0.1) = 0: keep the 5 largest (MergeKit: none)
        (0.5, 0.0, 0.6, 1.0),  # gamma 0: plain magnitude pruning
        (0.95, 0.2, 0.1, 0.9),  # n_bot = 10 - 9 - 2 < 0: n_top cut to 1, nothing at the bottom
        (1.0, 0.1, 0.1, 1.0),  # density 1: no-op
    ],
)
def test_breadcrumbs_hand_computed(
    tmp_path: Path, density: float, gamma: float, lo: float, hi: float
) -> None:
    close(crumbs(tmp_path, density, gamma, "o"), B0 + kept(lo, hi))


def test_breadcrumbs_ties(tmp_path: Path) -> None:
    # model 1 keeps 0.5..0.9 (density .5, gamma .1); model 2 = -δ keeps the same entries negated
    # with weight 0.5: Σ = 0.5·kept -> majority = sign(kept); model 2 never agrees.
    p = [{"weight": 1.0, "density": 0.5, "gamma": 0.1}, {"weight": 0.5, "density": 0.5}]
    got = merge_states(
        tmp_path, "breadcrumbs_ties", {"w": B0}, [{"w": B0 + DB}, {"w": B0 - DB}], p, {"gamma": 0.1}
    )["w"]
    close(got, B0 + kept(0.5, 0.9))


# --- DARE -----------------------------------------------------------------------------------

N = 64
G0 = torch.linspace(-1, 1, N)
DA = torch.sin(torch.arange(N, dtype=torch.float32)) * 0.1
DC = torch.cos(torch.arange(N, dtype=torch.float32) * 0.7) * 0.1


def draws(seed: int, name: str, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape, generator=tensor_generator(seed, name, index))


def dare_expected(d: torch.Tensor, keep: torch.Tensor, p: float, mode: str | None) -> torch.Tensor:
    masked = d * keep
    if mode == "l1":
        return masked * (d.abs().sum() / masked.abs().sum())
    if mode == "inverse_density":
        return masked / p
    return masked


@pytest.mark.parametrize("mode", ["l1", "inverse_density", None])
def test_dare_linear(tmp_path: Path, mode: str | None) -> None:
    params = {"rescale": mode is not None}
    if mode:
        params["rescale_mode"] = mode
    mp = [{"weight": 0.6, "density": 0.3}, {"weight": 0.4, "density": 0.7}]
    got = merge_states(
        tmp_path, "dare_linear", {"w": G0}, [{"w": G0 + DA}, {"w": G0 + DC}], mp, params, seed=5
    )["w"]
    k1 = draws(5, "w", 0, (N,)) < 0.3
    k2 = draws(5, "w", 1, (N,)) < 0.7
    want = G0 + 0.6 * dare_expected(DA, k1, 0.3, mode) + 0.4 * dare_expected(DC, k2, 0.7, mode)
    close(got, want, 1e-5)
    assert 0 < int(k1.sum()) < N  # the test exercises both kept and dropped entries


def test_dare_ties_sign_election(tmp_path: Path) -> None:
    mp = [{"weight": 1.0, "density": 0.5}, {"weight": 1.0, "density": 0.5}]
    got = merge_states(
        tmp_path, "dare_ties", {"w": G0}, [{"w": G0 + DA}, {"w": G0 + DC}], mp, seed=3
    )["w"]
    a = dare_expected(DA, draws(3, "w", 0, (N,)) < 0.5, 0.5, "l1")
    c = dare_expected(DC, draws(3, "w", 1, (N,)) < 0.5, 0.5, "l1")
    positive = (a + c) >= 0
    agree_a = torch.where(positive, a > 0, a < 0)
    agree_c = torch.where(positive, c > 0, c < 0)
    # dare_ties: normalize false -> plain sum of the agreeing entries
    close(got, G0 + a * agree_a + c * agree_c, 1e-5)


def test_dare_keeps_density_fraction(tmp_path: Path) -> None:
    d = torch.ones(20000)
    mp = [{"weight": 1.0, "density": 0.3}]
    got = merge_states(tmp_path, "dare_linear", {"w": d * 0}, [{"w": d}], mp, {"rescale": False})
    assert abs(float((got["w"] != 0).float().mean()) - 0.3) < 0.02


# --- DELLA ----------------------------------------------------------------------------------

DD = torch.tensor(
    [
        [0.1, -0.4, 0.3, 0.2, -0.05, 0.6],
        [-0.3, 0.2, -0.1, 0.5, 0.4, -0.25],
        [1.0, 2.0, -3.0, 0.5, 0.1, -0.2],
    ]
)
DE = -0.5 * DD.flip(1)


def della_probs(d: torch.Tensor, density: float, eps: float) -> torch.Tensor:
    """Keep probabilities by hand: rank of |δ| within its row (0 = smallest)."""
    rows = d.unsqueeze(0) if d.dim() == 1 else d
    probs = torch.empty_like(rows)
    n = rows.shape[1]
    for i, row in enumerate(rows.tolist()):
        order = sorted(range(n), key=lambda c: (abs(row[c]), c))
        for rank, c in enumerate(order):
            probs[i, c] = density - eps + 2 * eps * rank / (n - 1)
    return probs.reshape(d.shape)


@pytest.mark.parametrize("mode", ["l1", "inverse_density"])
def test_della_linear(tmp_path: Path, mode: str) -> None:
    base = torch.zeros(3, 6) + 0.125
    mp = [{"weight": 1.0, "density": 0.5, "epsilon": 0.2}, {"weight": 0.5, "density": 0.4}]
    got = merge_states(
        tmp_path,
        "della_linear",
        {"w": base},
        [{"w": base + DD}, {"w": base + DE}],
        mp,
        {"rescale_mode": mode, "epsilon": 0.1},  # global epsilon: the fallback for model 2
        seed=9,
    )["w"]
    p1, p2 = della_probs(DD, 0.5, 0.2), della_probs(DE, 0.4, 0.1)
    assert torch.allclose(p1[0], torch.tensor([0.38, 0.62, 0.54, 0.46, 0.3, 0.7]))
    k1, k2 = draws(9, "w", 0, (3, 6)) < p1, draws(9, "w", 1, (3, 6)) < p2
    if mode == "l1":
        e1 = dare_expected(DD, k1, 0, "l1")
        e2 = dare_expected(DE, k2, 0, "l1")
    else:
        e1, e2 = DD * k1 / p1, DE * k2 / p2
    close(got, base + e1 + 0.5 * e2, 1e-5)


def test_della_ties_one_dimensional(tmp_path: Path) -> None:
    # 1-D: one row; della = TIES election + normalize (default true) + rescale l1
    d1, d2 = DD[0], DD[1]
    mp = [{"weight": 1.0, "density": 0.5}, {"weight": 2.0, "density": 0.5}]
    got = merge_states(tmp_path, "della", {"b": torch.zeros(6)}, [{"b": d1}, {"b": d2}], mp, seed=4)
    a = dare_expected(d1, draws(4, "b", 0, (6,)) < della_probs(d1, 0.5, 0.15), 0, "l1")
    c = dare_expected(d2, draws(4, "b", 1, (6,)) < della_probs(d2, 0.5, 0.15), 0, "l1")
    wa, wc = 1.0 * a, 2.0 * c
    positive = (wa + wc) >= 0
    ag_a, ag_c = torch.where(positive, wa > 0, wa < 0), torch.where(positive, wc > 0, wc < 0)
    div = 1.0 * ag_a + 2.0 * ag_c
    div[div == 0] = 1
    close(got["b"], (wa * ag_a + wc * ag_c) / div, 1e-5)


def test_della_edge_densities(tmp_path: Path) -> None:
    base = {"w": torch.zeros(4, 1) + 1.0}  # rows of one entry: p = density (MergeKit: NaN)
    ft = {"w": base["w"] + torch.tensor([[0.5], [-0.5], [0.25], [1.0]])}
    for density, tag in ((1.0, "one"), (0.0, "zero")):
        got = merge_states(
            tmp_path, "della_linear", base, [ft], [{"weight": 1.0, "density": density}], tag=tag
        )
        close(got["w"], ft["w"] if density else base["w"])
    got = merge_states(
        tmp_path,
        "della_linear",
        base,
        [ft],
        [{"weight": 1.0, "density": 0.5}],
        {"rescale": False},
        seed=2,
        tag="half",
    )
    keep = draws(2, "w", 0, (4, 1)) < 0.5
    close(got["w"], base["w"] + (ft["w"] - base["w"]) * keep)


# --- parity with a direct port of MergeKit's GTA task ---------------------------------------


def mergekit_gta(base, xs, weights, densities, gammas, consensus, normalize, lam):
    """MergeKit generalized_task_arithmetic + sparsify (magnitude, magnitude_outliers with the
    n_top = 0 slice fixed), written the way MergeKit writes it (stacked tensors)."""

    def magnitude(t, density):
        if density >= 1:
            return t
        k = int(density * t.numel())
        mask = torch.zeros_like(t)
        mask.view(-1)[torch.argsort(t.abs().view(-1), descending=True, stable=True)[:k]] = 1
        return t * mask

    def outliers(t, density, gamma):
        if density >= 1:
            return t
        n = t.numel()
        target, n_top = int(density * n), int(gamma * n)
        n_bot = n - target - n_top
        if n_bot < 0:
            n_top, n_bot = n_top + n_bot, 0
        idx = torch.sort(t.abs().view(-1), stable=True).indices
        mask = torch.zeros_like(t)
        mask.view(-1)[idx[n_bot : n - n_top]] = 1
        return t * mask

    deltas = []
    for x, d, g in zip(xs, densities, gammas, strict=True):
        delta = x - base
        deltas.append(outliers(delta, d, g) if g is not None else magnitude(delta, d))
    deltas = torch.stack(deltas)
    w = torch.tensor(weights, dtype=deltas.dtype).view(-1, *([1] * base.dim()))
    wd = deltas * w
    if consensus:
        majority = (wd.sum(0) >= 0).to(wd.dtype) * 2 - 1
        mask = wd.sign() == majority
        mixed, div = (wd * mask).sum(0), (w * mask).sum(0)
        div[div == 0] = 1
    else:
        mixed, div = wd.sum(0), w.sum(0)
        div[div.abs() < 1e-8] = 1
    if normalize:
        mixed = mixed / div
    return base + mixed * lam


@pytest.mark.parametrize(
    ("method", "gamma", "normalize"),
    [
        ("task_arithmetic", None, True),
        ("ties", None, True),
        ("ties", None, False),
        ("breadcrumbs", 0.05, False),
        ("breadcrumbs_ties", 0.05, True),
    ],
)
def test_parity_with_mergekit_port(
    tmp_path: Path, method: str, gamma: float | None, normalize: bool
) -> None:
    gen = torch.Generator().manual_seed(1)
    shapes = {"a.weight": (40, 30), "b.bias": (30,)}
    base = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    xs = [
        {n: t + 0.1 * torch.randn(t.shape, generator=gen) for n, t in base.items()}
        for _ in range(3)
    ]
    weights, densities = [0.7, -0.3, 1.2], [0.3, 0.8, 0.5]
    if method == "task_arithmetic":  # MergeKit declares density but never sparsifies here
        densities = [1.0, 1.0, 1.0]
    mp = [
        {"weight": w, "density": d} | ({"gamma": gamma} if gamma is not None else {})
        for w, d in zip(weights, densities, strict=True)
    ]
    params = {"normalize": normalize, "lambda": 0.9}
    got = merge_states(tmp_path, method, base, xs, mp, params)
    consensus = "sum" if method.endswith("ties") else None
    for n in shapes:
        want = mergekit_gta(
            base[n],
            [x[n] for x in xs],
            weights,
            densities,
            [gamma] * 3,
            consensus,
            normalize,
            0.9,
        )
        close(got[n], want, 1e-5)
