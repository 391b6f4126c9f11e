"""Engine behaviour: shard I/O, output layout, determinism, RNG helper and every error path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from merge_helpers import TOKENIZER_FILES, read_state, write_state
from safetensors import safe_open

from mixmerge.merge import MergeError, run_merge, tensor_generator, tensor_seed


def ta_recipe(base: Path, *models: Path, **params: object) -> dict:
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(base),
        "models": [{"model": str(m), "parameters": {"weight": 0.5}} for m in models],
        "parameters": dict(params),
    }


def test_sharded_input_matches_single(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    single = ta_recipe(base_dir, make_finetune(1), make_finetune(2))
    sharded = ta_recipe(base_dir, make_finetune(1, shards=3), make_finetune(2, shards=2))
    run_merge(single, tmp_path / "a", progress=False)
    run_merge(sharded, tmp_path / "b", progress=False)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (
        tmp_path / "b/model.safetensors"
    ).read_bytes()


def test_sharded_output_loads(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    recipe = ta_recipe(base_dir, make_finetune(1), make_finetune(2))
    run_merge(recipe, tmp_path / "one", progress=False)
    run_merge(recipe, tmp_path / "many", progress=False, max_shard_size="8KB")
    index = json.loads((tmp_path / "many/model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert not (tmp_path / "many/model.safetensors").exists()
    assert not list((tmp_path / "many").glob(".shard-*"))
    one, many = read_state(tmp_path / "one"), read_state(tmp_path / "many")
    assert one.keys() == many.keys() and all(torch.equal(one[n], many[n]) for n in one)
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in one.values()
    )

    for out in ("one", "many"):
        model = AutoModelForCausalLM.from_pretrained(tmp_path / out)
        sd = model.state_dict()
        for n, t in one.items():
            assert torch.equal(sd[n], t), n
        logits = model(torch.tensor([[1, 2, 3]])).logits
        assert logits.shape == (1, 3, 64) and torch.isfinite(logits).all()


def test_output_files_and_dtype(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    recipe = ta_recipe(base_dir, make_finetune(1))
    recipe["out_dtype"] = "bfloat16"
    out = tmp_path / "out"
    run_merge(recipe, out, seed=7, progress=False)
    for fname, text in TOKENIZER_FILES.items():
        assert (out / fname).read_text() == text
    assert (out / "generation_config.json").exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    as_run = yaml.safe_load((out / "mixmerge_recipe.yaml").read_text())
    assert as_run == recipe
    assert "seed: 7" in (out / "mixmerge_recipe.yaml").read_text()
    card = (out / "README.md").read_text()
    assert "task_arithmetic" in card and str(make_finetune(1)) in card
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert {fh.get_slice(n).get_dtype() for n in fh.keys()} == {"BF16"}  # noqa: SIM118
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    # default out_dtype is the base checkpoint's dtype (float32 here)
    run_merge(ta_recipe(base_dir, make_finetune(1)), tmp_path / "f32", progress=False)
    assert json.loads((tmp_path / "f32/config.json").read_text())["dtype"] == "float32"


def test_byte_identical_reruns(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = ta_recipe(base_dir, make_finetune(1), make_finetune(2), **{"lambda": 0.7})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_merge(path, tmp_path / "a", progress=False, max_shard_size=10_000)
    run_merge(path, tmp_path / "b", progress=False, max_shard_size=10_000)
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_non_float_tensors_copied_from_base(tmp_path: Path, base_dir: Path) -> None:
    state = {"w": torch.randn(4, 4), "ids": torch.arange(5)}
    base = write_state(tmp_path / "base", state, base_dir)
    ft = write_state(tmp_path / "ft", {"w": state["w"] + 1, "ids": torch.arange(5) * 9}, base_dir)
    run_merge(ta_recipe(base, ft), tmp_path / "out", progress=False)
    got = read_state(tmp_path / "out")
    assert torch.equal(got["ids"], state["ids"])
    torch.testing.assert_close(got["w"], state["w"] + 0.5)


def test_tensor_rng_helper() -> None:
    assert tensor_seed(0, "a.weight", 1) == tensor_seed(0, "a.weight", 1)
    seeds = {tensor_seed(s, n, i) for s in (0, 1) for n in ("a", "b") for i in (0, 1)}
    assert len(seeds) == 8
    x = torch.rand(5, generator=tensor_generator(3, "x", 0))
    assert torch.equal(x, torch.rand(5, generator=tensor_generator(3, "x", 0)))


# --- errors: MergeError, one line, nothing left behind --------------------------------


def assert_fails(recipe: dict, tmp_path: Path, match: str, **kw: object) -> None:
    out = tmp_path / "out"
    with pytest.raises(MergeError, match=match) as info:
        run_merge(recipe, out, progress=False, **kw)
    assert "\n" not in str(info.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_error_unknown_method(base_dir: Path, tmp_path: Path) -> None:
    assert_fails(
        {"merge_method": "nope", "models": [{"model": str(base_dir)}]},
        tmp_path,
        "unknown merge_method 'nope'",
    )


def test_error_unknown_parameters(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = ta_recipe(base_dir, make_finetune(1), normalise=True)
    assert_fails(recipe, tmp_path, "unknown parameter 'normalise'")
    recipe = ta_recipe(base_dir, make_finetune(1))
    recipe["models"][0]["parameters"]["lambda"] = 1.0  # global-only parameter
    assert_fails(recipe, tmp_path, "unknown parameter 'lambda' for model")
    linear = {
        "merge_method": "linear",
        "models": [{"model": str(base_dir), "parameters": {"weight": 1, "density": 0.5}}],
    }
    assert_fails(linear, tmp_path, "unknown parameter 'density'")
    assert_fails(dict(recipe, slices=[]), tmp_path, "both 'slices' and 'models'")
    assert_fails(dict(recipe, modules={}), tmp_path, "'modules' is not supported")


def test_error_missing_model(base_dir: Path, tmp_path: Path) -> None:
    assert_fails(ta_recipe(base_dir, tmp_path / "absent"), tmp_path, "absent: directory not found")
    (tmp_path / "noconf").mkdir()
    assert_fails(ta_recipe(base_dir, tmp_path / "noconf"), tmp_path, "noconf: config.json missing")
    assert_fails(ta_recipe(tmp_path / "nobase", base_dir), tmp_path, "nobase: directory not found")


def test_error_missing_tensor(base_dir: Path, tmp_path: Path) -> None:
    state = read_state(base_dir)
    del state["model.layers.1.mlp.up_proj.weight"]
    partial = write_state(tmp_path / "partial", state, base_dir)
    assert_fails(
        ta_recipe(base_dir, partial),
        tmp_path,
        r"tensor model\.layers\.1\.mlp\.up_proj\.weight missing from model .*partial",
    )


def test_error_shape_mismatch(base_dir: Path, tmp_path: Path) -> None:
    state = read_state(base_dir)
    state["model.embed_tokens.weight"] = torch.zeros(70, 16)  # a bigger vocab
    bigger = write_state(tmp_path / "bigger", state, base_dir)
    assert_fails(
        ta_recipe(base_dir, bigger),
        tmp_path,
        r"shape mismatch for tensor model\.embed_tokens\.weight: model .*bigger has \[70, 16\]",
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_error_non_finite_input(base_dir: Path, tmp_path: Path, bad: float) -> None:
    state = read_state(base_dir)
    state["model.norm.weight"][3] = bad
    broken = write_state(tmp_path / "broken", state, base_dir)
    assert_fails(
        ta_recipe(base_dir, broken),
        tmp_path,
        r"non-finite values \(NaN/Inf\) in tensor model\.norm\.weight of model .*broken",
    )


@pytest.mark.parametrize("broken_one", ["base", "model"])
def test_error_non_finite_bf16_input(base_dir: Path, tmp_path: Path, broken_one: str) -> None:
    """bf16 checkpoints merged whole in float32 (TIES at density 0.5): the base is widened
    and checked in one pass, a model's task vector formed and checked in one; a NaN in
    either is named."""
    state = {n: t.bfloat16() for n, t in read_state(base_dir).items()}
    good = write_state(tmp_path / "good", state, base_dir)
    state["model.layers.1.mlp.up_proj.weight"][5, 7] = float("nan")
    broken = write_state(tmp_path / "broken", state, base_dir)
    base, model = (broken, good) if broken_one == "base" else (good, broken)
    recipe = ta_recipe(base, model, good)
    recipe["merge_method"] = "ties"
    recipe["dtype"] = "float32"
    for entry in recipe["models"]:
        entry["parameters"]["density"] = 0.5
    assert_fails(
        recipe, tmp_path,
        r"non-finite values \(NaN/Inf\) in tensor model\.layers\.1\.mlp\.up_proj\.weight "
        r"of model .*broken",
    )


@pytest.mark.parametrize("method", ["task_arithmetic", "ties"])
def test_error_non_finite_result(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path, method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streamed (task_arithmetic) and whole tensors (TIES at density 0.5, written behind the
    next tensor's merge on two workers): the failed write is the merge's error."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    recipe = ta_recipe(base_dir, make_finetune(1), **{"lambda": 1e38})
    recipe["merge_method"] = method
    recipe["models"][0]["parameters"]["density"] = 0.5
    recipe["out_dtype"] = "float16"  # overflows on the cast
    assert_fails(recipe, tmp_path, r"merged tensor \S+ has non-finite values")


def test_error_parameter_values(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    a = make_finetune(1)
    recipe = ta_recipe(base_dir, a)
    recipe["models"][0]["parameters"]["density"] = -0.1
    assert_fails(recipe, tmp_path, r"parameter 'density' for model .* = -0.1 out of range")
    recipe = ta_recipe(base_dir, a)
    recipe["models"][0]["parameters"] = {}
    assert_fails(recipe, tmp_path, "missing required parameter 'weight' for model")
    assert_fails(ta_recipe(base_dir, a, normalize="yes"), tmp_path, "must be a boolean")
    assert_fails(ta_recipe(base_dir, a, **{"lambda": "big"}), tmp_path, "must be a number")
    linear = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(base_dir), "parameters": {"weight": -1.0}},
        ],
    }
    assert_fails(linear, tmp_path, "weights sum to 0")
    no_base = ta_recipe(base_dir, a)
    del no_base["base_model"]
    assert_fails(no_base, tmp_path, "requires base_model")


def test_failed_merge_keeps_previous_output(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_merge(ta_recipe(base_dir, make_finetune(1)), out, progress=False)
    before = (out / "model.safetensors").read_bytes()
    bad = ta_recipe(base_dir, make_finetune(1), **{"lambda": 1e38})
    bad["out_dtype"] = "float16"
    with pytest.raises(MergeError):
        run_merge(bad, out, progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_recipe_with_path_objects(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = {
        "merge_method": "linear",
        "models": [{"model": make_finetune(1), "parameters": {"weight": 1.0}}],
    }
    run_merge(recipe, tmp_path / "out", progress=False)
    as_run = yaml.safe_load((tmp_path / "out/mixmerge_recipe.yaml").read_text())
    assert as_run["models"][0]["model"] == str(make_finetune(1))


def test_content_hash_is_written_with_the_shards(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path, monkeypatch
) -> None:
    """mixmerge_hash.json: each shard's sha256 computed while it was streamed equals the file's;
    two byte-identical merges share the digest; a directory without a record is hashed once."""
    import hashlib

    from mixmerge import model_hash

    recipe = ta_recipe(base_dir, make_finetune(1), make_finetune(2))
    run_merge(recipe, tmp_path / "a", progress=False, max_shard_size="8KB")
    run_merge(recipe, tmp_path / "b", progress=False, max_shard_size="8KB")
    record = json.loads((tmp_path / "a" / model_hash.HASH_FILE).read_text())
    shards = sorted(p.name for p in (tmp_path / "a").glob("*.safetensors"))
    assert sorted(record["files"]) == shards and len(shards) > 2
    for name, entry in record["files"].items():
        data = (tmp_path / "a" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert model_hash.model_digest(tmp_path / "a") == model_hash.model_digest(tmp_path / "b")
    assert model_hash.model_digest(tmp_path / "a") != model_hash.model_digest(base_dir)
    # a model made elsewhere: hashed on first use, then served from the side cache
    monkeypatch.setenv("MIXMERGE_CACHE_DIR", str(tmp_path / "cache"))
    foreign = tmp_path / "foreign"
    shutil.copytree(tmp_path / "a", foreign)
    (foreign / model_hash.HASH_FILE).unlink()
    calls = []
    real = model_hash.sha256_file
    monkeypatch.setattr(model_hash, "sha256_file", lambda p: calls.append(p) or real(p))
    assert model_hash.model_digest(foreign) == record["digest"]
    assert model_hash.model_digest(foreign) == record["digest"]
    assert len(calls) == len(shards)  # once, not twice
    assert not (foreign / model_hash.HASH_FILE).exists()  # the directory itself is left alone
