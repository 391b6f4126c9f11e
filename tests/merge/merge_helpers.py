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
