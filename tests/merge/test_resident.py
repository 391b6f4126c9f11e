"""Merging into a resident model (the search's trials) writes exactly the bytes a merge to disk
writes, streamed and whole-tensor methods alike, and refuses a model it does not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mixmerge.merge.engine import merge_into, output_dtype, run_merge
from mixmerge.merge.errors import MergeError


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("resident")
    out = []
    for i in range(2):
        target = root / f"ft{i}"
        shutil.copytree(tiny_model_dir, target)
        gen = torch.Generator().manual_seed(i)
        tensors = load_file(str(tiny_model_dir / "model.safetensors"))
        save_file(
            {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in tensors.items()},
            str(target / "model.safetensors"),
            metadata={"format": "pt"},
        )
        (target / "mixmerge_hash.json").unlink(missing_ok=True)
        out.append(target)
    return out


def _recipe(method: str, base: Path, models: list[Path]) -> dict:
    params = {"weight": 0.7} if method == "task_arithmetic" else {"weight": 1.0, "density": 0.4}
    return {
        "merge_method": method,
        "base_model": str(base),
        "models": [{"model": str(m), "parameters": params} for m in models],
        "dtype": "float32",
    }


@pytest.mark.parametrize("method", ["task_arithmetic", "dare_ties"])  # streamed; whole, random
def test_resident_merge_is_the_merge_on_disk(
    method: str, tiny_model_dir: Path, models: list[Path], tmp_path: Path
) -> None:
    recipe = _recipe(method, tiny_model_dir, models)
    run_merge(recipe, tmp_path / "out", seed=3, progress=False)
    on_disk = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert output_dtype(recipe) == next(iter(on_disk.values())).dtype
    resident = {k: torch.full_like(v, float("nan")) for k, v in on_disk.items()}
    digest = merge_into(recipe, resident, seed=3)
    for name, tensor in on_disk.items():
        assert torch.equal(resident[name], tensor), name
    assert merge_into(recipe, resident, seed=3) == digest  # the same bytes, the same digest
    if method == "dare_ties":  # random drops: another seed, other bytes
        assert merge_into(recipe, resident, seed=4) != digest


def test_resident_model_that_does_not_fit_is_refused(tiny_model_dir: Path, models: list[Path]) -> None:
    recipe = _recipe("task_arithmetic", tiny_model_dir, models)
    full = {k: v.clone() for k, v in load_file(str(tiny_model_dir / "model.safetensors")).items()}
    missing = dict(list(full.items())[1:])
    with pytest.raises(MergeError, match="resident model has no tensor"):
        merge_into(recipe, missing)
    half = {k: v.to(torch.bfloat16) for k, v in full.items()}
    with pytest.raises(MergeError, match="does not fit the resident model"):
        merge_into(recipe, half)
    extra = {**full, "extra.weight": torch.zeros(3)}
    with pytest.raises(MergeError, match="wrote no values for 1 tensors, e.g. extra.weight"):
        merge_into(recipe, extra)
