"""Every method end to end: determinism, seeds, chunked streaming, and bad-input errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from merge_helpers import read_state, write_model

from mixmerge.merge import METHOD_NAMES, MergeError, run_merge
from mixmerge.merge import execute as execute_mod
from mixmerge.merge.registry import METHODS

# Every registered method, so a new one gets these checks without being listed here.
RANDOM = [m for m in METHOD_NAMES if METHODS[m].uses_rng]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("robust")
    gen = torch.Generator().manual_seed(0)
    shapes = {"model.embed_tokens.weight": (48, 8), "model.layers.0.mlp.up_proj.weight": (16, 8),
              "model.layers.0.input_layernorm.weight": (8,), "lm_head.weight": (48, 8)}  # fmt: skip
    base = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    base["ids"] = torch.arange(6)  # a non-float buffer: copied from the base
    b = write_model(root / "base", base)
    fts = []
    for i in range(3):
        st = {n: t + 0.05 * torch.randn(t.shape, generator=gen) if t.is_floating_point() else t
              for n, t in base.items()}  # fmt: skip
        fts.append(write_model(root / f"ft{i}", st))
    return b, fts




def recipe(method: str, base: Path, fts: list[Path], **params: object) -> dict:
    """A recipe giving each model the weight/density its method declares (density < 1, so that
    sparsifying methods sparsify), every required global parameter 0.4, as many models as the
    method takes, and the base only where the method needs one."""
    declared = {p.name for p in METHODS[method].model_params}
    params = {**{p.name: 0.4 for p in METHODS[method].global_params if p.required}, **params}
    entries = []
    for i, m in enumerate(fts[: METHODS[method].exact_models or len(fts)]):
        p: dict = {}
        if "weight" in declared:
            p["weight"] = [0.5, 0.3, 0.2][i]
        if "density" in declared:
            p["density"] = 0.6
        entries.append({"model": str(m), "parameters": p} if p else {"model": str(m)})
    r: dict = {"merge_method": method, "models": entries}
    if METHODS[method].needs_base:
        r["base_model"] = str(base)
    if params:
        r["parameters"] = dict(params)
    return r


def digest(out: Path) -> str:
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_is_deterministic(
    method: str, models: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    base, fts = models
    run_merge(recipe(method, base, fts), tmp_path / "a", seed=11, progress=False)
    run_merge(recipe(method, base, fts), tmp_path / "b", seed=11, progress=False)
    for f in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    state = read_state(tmp_path / "a")
    assert torch.equal(state["ids"], torch.arange(6))
    assert all(torch.isfinite(t).all() for t in state.values())
    run_merge(recipe(method, base, fts), tmp_path / "c", seed=12, progress=False)
    if method in RANDOM:
        assert digest(tmp_path / "a") != digest(tmp_path / "c")
    else:
        assert digest(tmp_path / "a") == digest(tmp_path / "c")


def test_lowrank_svd_is_seeded(models: tuple[Path, list[Path]], tmp_path: Path) -> None:
    base, fts = models
    for out, seed in (("a", 1), ("b", 1)):
        run_merge(recipe("r_tsvm", base, fts, svd="lowrank", oversample=0), tmp_path / out,
                  seed=seed, progress=False)  # fmt: skip
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "dare_ties", "tsvm"])
def test_chunk_boundaries_do_not_matter(
    method: str, models: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Elementwise methods stream in chunks; odd chunk sizes must give identical files."""
    base, fts = models
    r = recipe(method, base, fts)
    if method == "ties":
        for e in r["models"]:
            e["parameters"]["density"] = 1.0  # elementwise: sign election only
    run_merge(r, tmp_path / "a", progress=False)
    monkeypatch.setattr(execute_mod, "CHUNK_CPU", 7)
    run_merge(r, tmp_path / "b", progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


@pytest.mark.parametrize(
    "method, streamed",
    [
        ("linear", True),
        ("ties", True),
        ("ties", False),
        ("dare_ties", False),
        ("della", False),
        ("sce", False),
    ],
)
def test_worker_count_does_not_matter(
    method: str,
    streamed: bool,
    models: tuple[Path, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streamed chunks are computed by up to get_num_threads() workers, written in order; a
    sparsifying method's task vectors and combine chunks are spread over the same workers
    (each op on one thread, so its L1 rescale sums in one order on any machine)."""
    base, fts = models
    r = recipe(method, base, fts)
    if streamed:
        for e in r["models"]:
            e["parameters"].pop("density", None)  # elementwise
    monkeypatch.setattr(execute_mod, "CHUNK_CPU", 5)
    threads = torch.get_num_threads()
    try:
        for out, n in (("one", 1), ("three", 3)):
            torch.set_num_threads(n)
            run_merge(r, tmp_path / out, progress=False)
            assert torch.get_num_threads() == n  # restored after the streamed tensors
    finally:
        torch.set_num_threads(threads)
    assert digest(tmp_path / "one") == digest(tmp_path / "three")


def test_inputs_are_never_modified(models: tuple[Path, list[Path]], tmp_path: Path) -> None:
    # float32 inputs with float32 arithmetic: the methods work in place on their own copies
    base, fts = models
    before = [hashlib.sha256((p / "model.safetensors").read_bytes()).digest() for p in [base, *fts]]
    for method in ("ties", "della", "model_stock", "r_tsvm"):
        run_merge(recipe(method, base, fts), tmp_path / method, progress=False)
    after = [hashlib.sha256((p / "model.safetensors").read_bytes()).digest() for p in [base, *fts]]
    assert before == after


def test_model_listed_twice_and_base_listed(
    models: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    # shared inputs (one reader, one tensor object) must not be modified through each other
    base, fts = models
    twice = recipe("ties", base, [fts[0], fts[0], base])
    run_merge(twice, tmp_path / "t", progress=False)
    once = recipe("ties", base, [fts[0]])
    once["models"][0]["parameters"]["weight"] = 0.8  # 0.5 + 0.3, same sign everywhere
    run_merge(once, tmp_path / "o", progress=False)
    a, b = read_state(tmp_path / "t"), read_state(tmp_path / "o")
    for n in a:
        torch.testing.assert_close(a[n], b[n])


# --- bad inputs: one-line MergeError, nothing written ---------------------------------------


def fails(r: dict, tmp_path: Path, match: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(MergeError, match=match) as info:
        run_merge(r, out, progress=False)
    assert "\n" not in str(info.value)
    assert not out.exists()


def with_model_param(r: dict, key: str, value: object) -> dict:
    for e in r["models"]:
        e.setdefault("parameters", {})[key] = value
    return r


BAD: list[tuple[str, Callable[[Path, list[Path]], dict], str]] = [
    ("della density-eps", lambda b, f: with_model_param(recipe("della", b, f), "epsilon", 0.7),
     r"della: density ± epsilon must lie in \(0, 1\) for model .* \(density 0.6, epsilon 0.7\)"),
    ("della density+eps", lambda b, f: with_model_param(
        with_model_param(recipe("della_linear", b, f), "density", 0.9), "epsilon", 0.15),
     r"density ± epsilon must lie in \(0, 1\).*density 0.9, epsilon 0.15"),
    ("negative density", lambda b, f: with_model_param(recipe("dare_ties", b, f), "density", -0.2),
     r"parameter 'density' for model .* = -0.2 out of range \(\[0, 1\]\)"),
    ("gamma too big", lambda b, f: with_model_param(recipe("breadcrumbs", b, f), "gamma", 1.5),
     r"parameter 'gamma' .* out of range"),
    ("negative epsilon", lambda b, f: with_model_param(recipe("della", b, f), "epsilon", -0.1),
     r"parameter 'epsilon' .* out of range"),
    ("weight for tsvm", lambda b, f: with_model_param(recipe("tsvm", b, f), "weight", 1.0),
     r"unknown parameter 'weight' for model .*merge_method tsvm"),
    ("alpha for r_tsvm", lambda b, f: recipe("r_tsvm", b, f, alpha=1.0),
     r"unknown parameter 'alpha' for merge_method r_tsvm"),
    ("rescale_mode for ties", lambda b, f: recipe("ties", b, f, rescale_mode="l1"),
     r"unknown parameter 'rescale_mode' for merge_method ties"),
    ("bad rescale_mode", lambda b, f: recipe("dare_linear", b, f, rescale_mode="l2"),
     r"parameter 'rescale_mode' .* must be one of l1, inverse_density, got 'l2'"),
    ("bad svd", lambda b, f: recipe("tsvm", b, f, svd="fast"),
     r"parameter 'svd' .* must be one of exact, full, lowrank"),
    ("bad weighting", lambda b, f: recipe("r_tsvm", b, f, weighting="median"),
     r"parameter 'weighting' .* must be one of outlier, uniform, none"),
    ("bad epsilon_mode", lambda b, f: recipe("r_tsvm", b, f, epsilon_mode="rel"),
     r"parameter 'epsilon_mode'"),
    ("negative gamma", lambda b, f: recipe("r_tsvm", b, f, gamma=-1),
     r"parameter 'gamma' .* = -1.0 out of range"),
    ("bad exclude", lambda b, f: recipe("tsvm", b, f, exclude=3),
     r"parameter 'exclude' .* must be a list of non-empty strings"),
    ("bad niter", lambda b, f: recipe("tsvm", b, f, niter=1.5), r"'niter' .* must be an integer"),
    ("bool as number", lambda b, f: recipe("r_tsvm", b, f, rank_selection="no"),
     r"'rank_selection' .* must be a boolean"),
    ("model_stock alone", lambda b, f: recipe("model_stock", b, f[:1]),
     r"model_stock needs at least 2 models besides the base, got 1"),
    ("no base", lambda b, f: {k: v for k, v in recipe("r_tsvm", b, f).items() if k != "base_model"},
     r"merge_method r_tsvm requires base_model"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make", "match"), BAD, ids=[c[0] for c in BAD])
def test_bad_inputs(
    case: str, make: Callable, match: str, models: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    base, fts = models
    fails(make(base, fts), tmp_path, match)


def test_exclude_accepts_a_list_and_a_string(
    models: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    base, fts = models
    run_merge(recipe("tsvm", base, fts, exclude=["embed_tokens", "lm_head"]), tmp_path / "a",
              progress=False)  # fmt: skip
    run_merge(recipe("tsvm", base, fts, exclude=[]), tmp_path / "b", progress=False)
    run_merge(recipe("tsvm", base, fts, exclude="embed_tokens"), tmp_path / "c", progress=False)
    a, b, c = (read_state(tmp_path / x) for x in "abc")
    name = "model.embed_tokens.weight"
    sb, s0 = read_state(fts[0]), read_state(base)
    mean = sum(read_state(f)[name] - s0[name] for f in fts) / 3
    torch.testing.assert_close(a[name], s0[name] + mean)
    torch.testing.assert_close(c[name], a[name])
    assert not torch.allclose(b[name], a[name])
    assert torch.equal(
        a["model.layers.0.mlp.up_proj.weight"], b["model.layers.0.mlp.up_proj.weight"]
    )
    assert sb  # the fine-tune was readable


def test_nan_in_streamed_chunk_names_tensor_and_model(
    models: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, fts = models
    st = read_state(fts[1])
    st["lm_head.weight"][40, 3] = float("nan")  # in the last chunk of 7 elements
    bad = write_model(tmp_path / "bad", st)
    monkeypatch.setattr(execute_mod, "CHUNK_CPU", 7)
    fails(recipe("task_arithmetic", base, [fts[0], bad]), tmp_path,
          r"non-finite values \(NaN/Inf\) in tensor lm_head\.weight of model .*bad")  # fmt: skip


def test_shard_writer_checks_the_plan(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from mixmerge.merge.modelio import ShardWriter

    plan = [("a", (2, 3), torch.float32), ("b", (4,), torch.bfloat16)]
    w = ShardWriter(tmp_path, 1 << 20, plan)
    with pytest.raises(RuntimeError, match="out of the planned order"):
        w.begin("b")
    w.begin("a")
    w.write(torch.arange(4, dtype=torch.float32))
    with pytest.raises(RuntimeError, match="more bytes than planned"):
        w.write(torch.arange(4, dtype=torch.float32))
    w2 = ShardWriter(tmp_path / "ok", 1 << 20, plan)
    (tmp_path / "ok").mkdir()
    w2.begin("a")
    w2.write(torch.arange(2, dtype=torch.float32))  # pieces of one tensor, in order
    w2.write(torch.arange(2, 6, dtype=torch.float32).reshape(2, 2))
    w2.end()
    with pytest.raises(RuntimeError, match="planned as torch.bfloat16"):
        w2.add("b", torch.ones(4))
    w2.add("b", torch.ones(4, dtype=torch.bfloat16))
    assert w2.finish() == ["model.safetensors"]
    got = load_file(tmp_path / "ok" / "model.safetensors")
    assert torch.equal(got["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert torch.equal(got["b"], torch.ones(4, dtype=torch.bfloat16))


def test_released_pages_read_back(models: tuple[Path, list[Path]]) -> None:
    import contextlib

    from mixmerge.merge.modelio import ModelFiles

    base, _ = models
    with contextlib.ExitStack() as stack:
        r = ModelFiles("base", base)
        r.open(stack)
        name = "model.embed_tokens.weight"
        before = r.get(name)
        r.release(name, 100)
        r.release(name)
        assert torch.equal(r.view(name), before)
        assert r.nbytes(name) == before.numel() * 4
