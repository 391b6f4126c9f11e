"""DPO with trl on the tiny model: trains, moves the weights, and saves a loadable model."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from mixmerge.data.prepare import prepare_dataset
from mixmerge.io import read_json
from mixmerge.tiny.datasets import write_training_fixtures
from mixmerge.train.dpo import fold_system, to_trl_rows, train_dpo

TRAIN_CFG = {
    "beta": 0.1,
    "learning_rate": 1e-3,
    "epochs": 1,
    "per_device_batch_size": 4,
    "max_length": 128,
    "device": "cpu",
}


def test_fold_system_into_first_user_turn() -> None:
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert fold_system(prompt) == [{"role": "user", "content": "S\n\nU"}]
    rows = to_trl_rows([{"prompt": prompt, "chosen": "a", "rejected": "b"}], keep_system=True)
    assert rows[0]["prompt"] == prompt and rows[0]["chosen"] == [
        {"role": "assistant", "content": "a"}
    ]


def test_train_dpo_on_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    write_training_fixtures(tmp_path / "raw", 12, seed=0)
    prepare_dataset(
        "truthy_dpo",
        {"loader": "truthy", "data_files": str(tmp_path / "raw/truthy_dpo.jsonl")},
        "honesty",
        tmp_path / "truthy.jsonl",
    )
    prepare_dataset(
        "grath",
        {"loader": "grath", "data_files": str(tmp_path / "raw/grath.jsonl")},
        "honesty",
        tmp_path / "grath.jsonl",
    )
    out = tmp_path / "model"
    summary = train_dpo(
        tiny_model_dir, [tmp_path / "truthy.jsonl", tmp_path / "grath.jsonl"], out, TRAIN_CFG
    )
    assert summary["steps"] >= 1 and summary["pairs"] > 12
    assert read_json(out / "mixmerge_train.json")["hyperparameters"]["beta"] == 0.1
    assert not (out / "trainer").exists()
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    AutoModelForCausalLM.from_pretrained(out)
