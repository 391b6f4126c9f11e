"""Checkpoint read/write helpers shared by the merge tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TOKENIZER_FILES = {
    "tokenizer_config.json": '{"model_max_length": 64}\n',
    "chat_template.jinja": "{{ messages }}\n",
}


def read_state(model_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint."""
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        state: dict[str, torch.Tensor] = {}
        for fname in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(model_dir / fname))
        return state
    return load_file(model_dir / "model.safetensors")


def write_state(
    model_dir: Path, state: dict[str, torch.Tensor], config_from: Path, shards: int = 1
) -> Path:
    """Write `state` as a checkpoint (optionally split into `shards` files) with a config."""
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_from / "config.json", model_dir / "config.json")
    names = sorted(state)
    if shards == 1:
        save_file(state, model_dir / "model.safetensors", metadata={"format": "pt"})
        return model_dir
    weight_map = {}
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: state[n] for n in names[i::shards]}
        save_file(part, model_dir / fname, metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
    )
    return model_dir


def write_model(model_dir: Path, state: dict[str, torch.Tensor], layers: int = 1) -> Path:
    """A minimal checkpoint (config.json + model.safetensors) for method tests."""
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file(
        {n: t.contiguous() for n, t in state.items()},
        model_dir / "model.safetensors",
        metadata={"format": "pt"},
    )
    (model_dir / "config.json").write_text(json.dumps({"num_hidden_layers": layers}))
    return model_dir


def merge_states(
    tmp_path: Path,
    method: str,
    base: dict[str, torch.Tensor] | None,
    models: list[dict[str, torch.Tensor]],
    model_params: list[dict] | None = None,
    params: dict | None = None,
    seed: int = 0,
    tag: str = "out",
) -> dict[str, torch.Tensor]:
    """Write `base` and `models` as checkpoints, merge them with `method`, read the result."""
    from mixmerge.merge import run_merge

    root = tmp_path / f"models-{tag}"
    recipe: dict = {"merge_method": method, "models": []}
    if base is not None:
        recipe["base_model"] = str(write_model(root / "base", base))
    for i, state in enumerate(models):
        entry: dict = {"model": str(write_model(root / f"m{i}", state))}
        if model_params and model_params[i]:
            entry["parameters"] = dict(model_params[i])
        recipe["models"].append(entry)
    if params:
        recipe["parameters"] = dict(params)
    run_merge(recipe, tmp_path / tag, seed=seed, progress=False)
    return read_state(tmp_path / tag)
