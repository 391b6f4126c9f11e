"""slerp, nuslerp, multislerp, karcher, sce, ram, ramplus_tl, nearswap, arcee_fusion and
passthrough (MergeKit 0.1.5) against hand-derived values on small
tensors, and their bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from merge_helpers import read_state, write_model

from mixmerge.merge import MergeError, run_merge


def _merge(tmp_path: Path, method: str, base: dict | None, others: list[dict], **recipe) -> dict:
    per_model = recipe.pop("model_parameters", [{}] * len(others))
    models = [write_model(tmp_path / f"m{i}", s) for i, s in enumerate(others)]
    raw = {"merge_method": method, **recipe}
    raw["models"] = [
        {"model": str(m), **({"parameters": p} if p else {})}
        for m, p in zip(models, per_model, strict=True)
    ]
    if base is not None:
        raw["base_model"] = str(write_model(tmp_path / "base", base))
    run_merge(raw, tmp_path / "out", progress=False)
    return read_state(tmp_path / "out")


def test_slerp_by_hand(tmp_path: Path) -> None:
    base = {"w": torch.tensor([[2.0, 0.0]]), "norm": torch.tensor([1.0, 1.0]), "z": torch.zeros(3)}
    other = {"w": torch.tensor([[0.0, 2.0]]), "norm": torch.tensor([2.0, 2.0]), "z": torch.zeros(3)}
    out = _merge(tmp_path, "slerp", base, [other], parameters={"t": 0.5})
    # 90 degrees apart: sin(pi/4) / sin(pi/2) of each, on the unnormalised inputs
    c = math.sin(math.pi / 4)
    torch.testing.assert_close(out["w"], torch.tensor([[2 * c, 2 * c]]))
    # collinear: plain interpolation; zero norms count as 1 (dot 0: slerp of zeros is zero)
    torch.testing.assert_close(out["norm"], torch.tensor([1.5, 1.5]))
    assert torch.equal(out["z"], torch.zeros(3))


def test_slerp_ends_and_gradient(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    base, other = torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)
    at0 = _merge(tmp_path / "a", "slerp", {"w": base}, [{"w": other}], parameters={"t": 0.0})
    at1 = _merge(tmp_path / "b", "slerp", {"w": base}, [{"w": other}], parameters={"t": 1.0})
    torch.testing.assert_close(at0["w"], base)
    torch.testing.assert_close(at1["w"], other)
    # the angle is the whole tensor's: the result's norm lies between the two inputs' on the arc
    mid = _merge(tmp_path / "c", "slerp", {"w": base}, [{"w": other}], parameters={"t": 0.3})["w"]
    a, b = base.flatten() / base.norm(), other.flatten() / other.norm()
    theta = math.acos(float((a * b).sum()))
    want = (math.sin(0.7 * theta) * base + math.sin(0.3 * theta) * other) / math.sin(theta)
    torch.testing.assert_close(mid, want, rtol=1e-5, atol=1e-6)


def test_nuslerp_by_hand(tmp_path: Path) -> None:
    c = math.sin(math.pi / 4)
    a, b = {"w": torch.tensor([[2.0, 0.0]])}, {"w": torch.tensor([[0.0, 2.0]])}
    even = [{"weight": 1.0}, {"weight": 1.0}]
    out = _merge(tmp_path / "a", "nuslerp", None, [a, b], model_parameters=even)
    torch.testing.assert_close(out["w"], torch.tensor([[2 * c, 2 * c]]))
    # with a base, the task vectors [1, 0] and [0, 1] are interpolated, then added to it
    base = {"w": torch.tensor([[1.0, 1.0]])}
    ta, tb = {"w": torch.tensor([[2.0, 1.0]])}, {"w": torch.tensor([[1.0, 2.0]])}
    out = _merge(tmp_path / "b", "nuslerp", base, [ta, tb], model_parameters=even)
    torch.testing.assert_close(out["w"], torch.tensor([[1 + c, 1 + c]]))
    # t = w1 / (w0 + w1) = 1: the second model; weights summing to ~0: t = 0.5
    one = _merge(tmp_path / "c", "nuslerp", None, [a, b], model_parameters=[{"weight": 0.0}, {"weight": 3.0}])
    torch.testing.assert_close(one["w"], b["w"])
    zero = _merge(tmp_path / "d", "nuslerp", None, [a, b], model_parameters=[{"weight": 1.0}, {"weight": -1.0}])
    torch.testing.assert_close(zero["w"], torch.tensor([[2 * c, 2 * c]]))
    # one angle per row (nuslerp_flatten: false): row 0 is collinear (a plain mean), row 1 not
    rows = {"w": torch.tensor([[1.0, 0.0], [1.0, 0.0]])}, {"w": torch.tensor([[3.0, 0.0], [0.0, 1.0]])}
    out = _merge(tmp_path / "e", "nuslerp", None, list(rows), model_parameters=even,
                 parameters={"nuslerp_flatten": False})  # fmt: skip
    torch.testing.assert_close(out["w"], torch.tensor([[2.0, 0.0], [c, c]]))


def test_multislerp_by_hand(tmp_path: Path) -> None:
    c = math.sin(math.pi / 4)
    a, b = {"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}
    even = [{"weight": 1.0}, {"weight": 1.0}]
    # orthogonal unit vectors, equal weights: the tangent mean is zero, the result the mean point
    out = _merge(tmp_path / "a", "multislerp", None, [a, b], model_parameters=even)
    torch.testing.assert_close(out["w"], torch.tensor([c, c]))
    # with a base, on the task vectors; a listed base is no input
    base = {"w": torch.tensor([1.0, 1.0])}
    ta, tb = {"w": torch.tensor([2.0, 1.0])}, {"w": torch.tensor([1.0, 2.0])}
    out = _merge(tmp_path / "b", "multislerp", base, [ta, tb], model_parameters=even)
    torch.testing.assert_close(out["w"], torch.tensor([1 + c, 1 + c]))
    # antipodal pair with equal weights: MergeKit's linear fallback
    neg = {"w": torch.tensor([-1.0, 0.0])}
    out = _merge(tmp_path / "c", "multislerp", None, [a, neg], model_parameters=even)
    torch.testing.assert_close(out["w"], torch.tensor([0.0, 0.0]))
    one = _merge(tmp_path / "d", "multislerp", None, [ta], model_parameters=[{"weight": 2.0}])
    assert torch.equal(one["w"], ta["w"])
    with pytest.raises(MergeError, match="weighted mean of the inputs is zero at tensor w"):
        _merge(tmp_path / "e", "multislerp", None, [a, neg, {"w": torch.zeros(2)}],
               model_parameters=even + [{"weight": 1.0}])  # fmt: skip


def test_karcher_by_hand(tmp_path: Path) -> None:
    c = math.sin(math.pi / 4)
    a, b = {"w": torch.tensor([2.0, 0.0])}, {"w": torch.tensor([0.0, 2.0])}
    # the geodesic midpoint of the unit vectors, scaled by the mean norm
    torch.testing.assert_close(_merge(tmp_path / "a", "karcher", None, [a, b])["w"], torch.tensor([2 * c, 2 * c]))
    # norms only scale: 3 and 1 give the same direction, mean norm 2
    a3, b1 = {"w": torch.tensor([3.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}
    torch.testing.assert_close(_merge(tmp_path / "b", "karcher", None, [a3, b1])["w"], torch.tensor([2 * c, 2 * c]))
    # a base_model not listed is one more input (MergeKit adds it)
    torch.testing.assert_close(_merge(tmp_path / "c", "karcher", b, [a])["w"], torch.tensor([2 * c, 2 * c]))
    # a zero model is left out of the mean but weighs in the norm: 0.5 * 0 + 0.5 * 2
    zero = {"w": torch.zeros(2)}
    torch.testing.assert_close(_merge(tmp_path / "d", "karcher", None, [zero, a])["w"], torch.tensor([1.0, 0.0]))
    # three directions: the iteration converges to the point whose log maps balance
    gen = torch.Generator().manual_seed(0)
    xs = [{"w": torch.randn(6, generator=gen, dtype=torch.float64)} for _ in range(3)]
    got = _merge(tmp_path / "e", "karcher", None, xs, parameters={"max_iter": 50, "tol": 1e-12}, dtype="float64")["w"]
    m = got / got.norm()
    units = [x["w"] / x["w"].norm() for x in xs]
    logs = [(torch.arccos((m @ u).clamp(-1, 1)) / torch.sin(torch.arccos((m @ u).clamp(-1, 1)))) * (u - (m @ u) * m) for u in units]
    assert float(sum(logs).norm()) < 1e-9
    torch.testing.assert_close(got.norm(), sum(x["w"].norm() for x in xs) / 3)


def test_ram_and_ramplus_tl_by_hand(tmp_path: Path) -> None:
    base = {"w": torch.zeros(4)}
    m1, m2 = {"w": torch.tensor([1.0, 1.0, 0.0, 1e-7])}, {"w": torch.tensor([0.0, 3.0, 0.0, 0.0])}
    # entry 0: one model changed it (its value); entry 1: two did (their mean); entry 3's change
    # is below epsilon (dropped)
    torch.testing.assert_close(_merge(tmp_path / "a", "ram", base, [m1, m2])["w"], torch.tensor([1.0, 2.0, 0.0, 0.0]))
    # rho = shared / unique entries per model: 1 / 1 and 1 / max(0, eps); lambda = 1 + 0.1 * min(rho, 0.2)
    out = _merge(tmp_path / "b", "ramplus_tl", base, [m1, m2])["w"]
    torch.testing.assert_close(out, torch.tensor([1.02, 2.0, 0.0, 0.0]))


def test_sce_by_hand(tmp_path: Path) -> None:
    base = {"w": torch.zeros(3)}
    m1, m2 = {"w": torch.tensor([1.0, -2.0, 0.5])}, {"w": torch.tensor([3.0, 1.0, 0.5])}
    w1, w2 = 5.25 / 3, 10.25 / 3  # mean squares of the task vectors
    w1, w2 = w1 / (w1 + w2), w2 / (w1 + w2)
    # the elected signs (+, -, +) erase model 2's entry 1
    want = torch.tensor([(1 * w1 + 3 * w2) / (w1 + w2), -2.0, 0.5])
    torch.testing.assert_close(_merge(tmp_path / "a", "sce", base, [m1, m2])["w"], want)
    # select_topk 0.5: of the 2 entries of non-zero variance (1 and 2.25), entry 1 is kept
    out = _merge(tmp_path / "b", "sce", base, [m1, m2], parameters={"select_topk": 0.5})["w"]
    torch.testing.assert_close(out, torch.tensor([0.0, -2.0, 0.0]))


def test_arcee_fusion_by_hand(tmp_path: Path) -> None:
    base = {"w": torch.zeros(1, 8)}
    other = {"w": torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 5.0]])}
    # one row: importance = k * |x - b| with one KL factor k > 0; sorted at floor(q * 7):
    # q1 = 0.2k, median = 0.4k, q3 = 0.6k, threshold 0.4k + 1.5 * 0.4k = 1.0k: only 5.0 passes
    out = _merge(tmp_path / "a", "arcee_fusion", base, [other])["w"]
    torch.testing.assert_close(out, torch.tensor([[0.0] * 7 + [5.0]]))
    # every importance equal (a flat IQR): all at the threshold, so all taken
    flat = {"w": torch.full((1, 8), 0.5)}
    out = _merge(tmp_path / "b", "arcee_fusion", base, [flat])["w"]
    torch.testing.assert_close(out, flat["w"])
    # above 10^6 entries the quantiles come from a sample drawn with the recipe's seed
    gen = torch.Generator().manual_seed(0)
    big_base, big = {"w": torch.randn(1001, 1000, generator=gen)}, {"w": torch.randn(1001, 1000, generator=gen)}
    runs = [_merge(tmp_path / f"big{i}", "arcee_fusion", big_base, [big])["w"] for i in range(2)]
    assert torch.equal(runs[0], runs[1])
    taken = runs[0] == big["w"]
    assert 0 < int(taken.sum()) < taken.numel()


def test_nearswap_by_hand(tmp_path: Path) -> None:
    base = {"w": torch.tensor([0.0, 0.0, 0.0, 1.0])}
    other = {"w": torch.tensor([1.0, 0.1, 1e-9, 3.0])}
    out = _merge(tmp_path, "nearswap", base, [other], parameters={"t": 0.5})
    # w = clamp(0.5 / max(|a-b|, 1e-6), 0, 1): 0.5, 1, 1, 0.25
    torch.testing.assert_close(out["w"], torch.tensor([0.5, 0.1, 1e-9, 1.5]))


def test_passthrough_scales_one_model(tmp_path: Path) -> None:
    state = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([3.0])}
    out = _merge(tmp_path / "a", "passthrough", None, [state], model_parameters=[{"scale": 2.0}])
    assert torch.equal(out["w"], torch.tensor([2.0, -4.0])) and torch.equal(out["b"], torch.tensor([6.0]))
    same = _merge(tmp_path / "b", "passthrough", None, [state])
    assert torch.equal(same["w"], state["w"])


def _mergekit_multislerp(base: torch.Tensor, xs: list[torch.Tensor], w: list[float]) -> torch.Tensor:
    """MergeKit 0.1.5's multislerp on whole stacked tensors (with a base, eps 1e-8)."""
    flat = torch.stack(xs) - base
    flat = flat.view(len(xs), -1)
    weights = torch.tensor(w) / sum(w)
    norms = torch.norm(flat, dim=-1, keepdim=True)
    units = flat / (norms + 1e-8)
    mean = (units * weights.view(-1, 1)).sum(0)
    mean = mean / torch.norm(mean)
    dots = (units * mean).sum(-1, keepdim=True)
    tangent = ((units - dots * mean) * weights.view(-1, 1)).sum(0)
    tn = torch.norm(tangent) + 1e-8
    res = mean * torch.cos(tn) + tangent * (torch.sin(tn) / tn)
    return (res * (norms.squeeze(-1) * weights).sum()).view(base.shape) + base


def _mergekit_ramplus_tl(base: torch.Tensor, xs: list[torch.Tensor], eps: float) -> torch.Tensor:
    """MergeKit 0.1.5's ramplus_tl (r 0.1, alpha 0.2) on whole stacked tensors."""
    tv = torch.stack([x - base for x in xs]).view(len(xs), -1)
    nonzero = tv.abs() > eps
    counts = nonzero.sum(dim=0, keepdim=True)
    overlap, unique = counts > 1, counts == 1
    rho = (nonzero & overlap).sum(dim=1) / (nonzero & unique).sum(dim=1).clamp(min=eps)
    lam = 1 + 0.1 * rho.clamp(min=0, max=0.2)
    tv = tv * nonzero
    merged = ((tv * unique * lam.unsqueeze(-1)) + (tv * overlap / counts.clamp(min=1))).sum(0)
    return base + merged.reshape_as(base)


def test_pieced_passes_match_mergekit_on_a_large_tensor(tmp_path: Path) -> None:
    """multislerp, karcher and ramplus_tl run by cache-sized pieces: on a tensor of several
    pieces they give MergeKit's whole-tensor values (ramplus_tl bit for bit; the others up to
    the order of their float sums; karcher against its float64 run, see its docstring)."""
    gen = torch.Generator().manual_seed(3)
    base = 0.02 * torch.randn(530, 1000, generator=gen)  # 2 pieces and a part
    xs = [base + 0.002 * torch.randn(base.shape, generator=gen)
          * (torch.rand(base.shape, generator=gen) < 0.3) for _ in range(3)]  # fmt: skip
    w = [0.2, 0.3, 0.5]
    states = [{"w": x} for x in xs]
    got = _merge(tmp_path / "ms", "multislerp", {"w": base}, states,
                 model_parameters=[{"weight": v} for v in w])["w"]  # fmt: skip
    torch.testing.assert_close(got, _mergekit_multislerp(base, xs, w), rtol=1e-6, atol=1e-9)
    got = _merge(tmp_path / "rp", "ramplus_tl", {"w": base}, states, parameters={"epsilon": 1e-4})["w"]
    assert torch.equal(got, _mergekit_ramplus_tl(base, xs, 1e-4))
    got = _merge(tmp_path / "k", "karcher", {"w": base}, states)["w"]
    exact = _merge(tmp_path / "k64", "karcher", {"w": base.double()},
                   [{"w": x.double()} for x in xs], dtype="float64")["w"]  # fmt: skip
    err = float((got.double() - exact).norm() / exact.norm())
    assert err < 1e-6


@pytest.mark.parametrize(
    ("method", "base", "others", "recipe", "message"),
    [
        ("slerp", True, 2, {"parameters": {"t": 0.5}}, "exactly one other model, got 2"),
        ("slerp", False, 1, {"parameters": {"t": 0.5}}, "requires base_model"),
        ("slerp", True, 1, {}, "missing required parameter 't'"),
        ("slerp", True, 1, {"parameters": {"t": "half"}}, "must be a number"),
        ("nearswap", True, 2, {"parameters": {"t": 0.1}}, "exactly one other model, got 2"),
        ("nearswap", True, 1, {"parameters": {"t": float("nan")}}, "must be finite"),
        ("passthrough", False, 2, {}, "exactly one model, got 2"),
        ("nuslerp", False, 3, {"parameters": {"weight": 1.0}}, "exactly two models, got 3"),
        ("nuslerp", False, 2, {}, "missing required parameter 'weight'"),
        ("multislerp", False, 2, {"parameters": {"weight": 0.0}}, "weights sum to 0 at tensor w"),
        ("karcher", False, 2, {"parameters": {"max_iter": 0}}, "out of range"),
        ("arcee_fusion", True, 2, {}, "exactly one other model, got 2"),
    ],
)
def test_bad_inputs_are_clear_errors(
    tmp_path: Path, method: str, base: bool, others: int, recipe: dict, message: str
) -> None:
    state = {"w": torch.ones(2)}
    with pytest.raises(MergeError, match=message):
        _merge(tmp_path, method, state if base else None, [state] * others, **recipe)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["slerp", "nearswap"])
def test_nan_and_shape_mismatch(tmp_path: Path, method: str) -> None:
    with pytest.raises(MergeError, match="non-finite"):
        _merge(tmp_path / "a", method, {"w": torch.ones(2)}, [{"w": torch.tensor([1.0, math.nan])}], parameters={"t": 0.5})
    with pytest.raises(MergeError, match="shape mismatch for tensor w"):
        _merge(tmp_path / "b", method, {"w": torch.ones(2)}, [{"w": torch.ones(3)}], parameters={"t": 0.5})
    with pytest.raises(MergeError, match="tensor x missing from model"):
        _merge(tmp_path / "c", method, {"w": torch.ones(2), "x": torch.ones(1)}, [{"w": torch.ones(2)}], parameters={"t": 0.5})




def test_a_mergekit_slerp_recipe_with_slices_runs_unchanged(
    base_dir: Path, make_finetune, tmp_path: Path
) -> None:
    """MergeKit's own SLERP example: one slice over both whole models, t per filter and layer."""
    other = make_finetune(1)
    t = [
        {"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
        {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
        {"value": 0.5},
    ]
    sliced = {
        "slices": [{"sources": [{"model": str(base_dir), "layer_range": [0, 2]},
                                {"model": str(other), "layer_range": [0, 2]}]}],
        "merge_method": "slerp",
        "base_model": str(base_dir),
        "parameters": {"t": t},
        "dtype": "float32",
    }  # fmt: skip
    run_merge(sliced, tmp_path / "sliced", progress=False)
    as_models = {**{k: v for k, v in sliced.items() if k != "slices"},
                 "models": [{"model": str(base_dir)}, {"model": str(other)}]}  # fmt: skip
    run_merge(as_models, tmp_path / "models", progress=False)
    a, b = read_state(tmp_path / "sliced"), read_state(tmp_path / "models")
    assert all(torch.equal(a[n], b[n]) for n in a)
    # the filters and the layer gradient reached the tensors: over 2 layers the gradients' ends,
    # t = 0 (the base) and t = 1 (the other model), exactly; the rest at t = 0.5
    base, tuned = read_state(base_dir), read_state(other)
    for layer, attn, mlp in ((0, base, tuned), (1, tuned, base)):
        q, up = f"model.layers.{layer}.self_attn.q_proj.weight", f"model.layers.{layer}.mlp.up_proj.weight"
        assert torch.equal(a[q], attn[q]) and torch.equal(a[up], mlp[up]), layer
    norm = "model.norm.weight"
    assert not torch.equal(a[norm], base[norm]) and not torch.equal(a[norm], tuned[norm])
    cut = {**sliced, "slices": [{"sources": [{"model": str(base_dir), "layer_range": [0, 1]},
                                              {"model": str(other), "layer_range": [0, 1]}]}]}  # fmt: skip
    with pytest.raises(MergeError, match=r"layer_range \[0, 1\] is not the whole model \(\[0, 2\]\)"):
        run_merge(cut, tmp_path / "cut", progress=False)
    two = {**sliced, "slices": sliced["slices"] * 2}
    with pytest.raises(MergeError, match="only one slice over the whole models"):
        run_merge(two, tmp_path / "two", progress=False)
