"""DPO with trl on the tiny model: trains, learns an easy preference, resumes, and saves a loadable model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mixmerge.data.prepare import prepare_dataset
from mixmerge.data.settings import DatasetSettings
from mixmerge.io import read_json, write_jsonl
from mixmerge.tiny.datasets import write_training_fixtures
from mixmerge.train.dpo import (
    gradient_accumulation,
    latest_checkpoint,
    to_trl_rows,
    train_dpo,
)
from mixmerge.train.settings import LoraSettings, TrainSettings

TRAIN = TrainSettings(
    beta=0.1,
    learning_rate=1e-3,
    num_train_epochs=1,
    per_device_train_batch_size=4,
    max_length=128,
    device="cpu",
)


def _easy_pairs(path: Path, n: int = 24) -> Path:
    """Chosen is always the same short answer, rejected always another: trivially learnable."""
    pairs = [
        {
            "prompt": [{"role": "user", "content": f"Question number {i}: is the sky blue?"}],
            "chosen": "Yes, the sky is blue.",
            "rejected": "banana seven window cloud",
            "source": "easy",
            "dimension": "honesty",
        }
        for i in range(n)
    ]
    write_jsonl(path, pairs)
    return path


def test_global_batch_gives_accumulation() -> None:
    def settings(**values: int) -> TrainSettings:
        return replace(TRAIN, **values)

    paper = settings(per_device_train_batch_size=2, global_batch_size=128)
    assert gradient_accumulation(paper, 8) == 8
    assert gradient_accumulation(settings(gradient_accumulation_steps=3), 1) == 3
    with pytest.raises(ValueError, match="global_batch_size=100 is not a multiple"):
        gradient_accumulation(settings(per_device_train_batch_size=3, global_batch_size=100), 2)


def test_train_dpo_on_fixture_data(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    write_training_fixtures(tmp_path / "raw", 12, seed=0)
    prepare_dataset(
        "truthy_dpo",
        DatasetSettings(loader="truthy", data_files=str(tmp_path / "raw/truthy_dpo.jsonl")),
        "honesty",
        tmp_path / "truthy.jsonl",
    )
    prepare_dataset(
        "grath",
        DatasetSettings(loader="grath", data_files=str(tmp_path / "raw/grath.jsonl")),
        "honesty",
        tmp_path / "grath.jsonl",
    )
    out = tmp_path / "model"
    summary = train_dpo(
        tiny_model_dir, [tmp_path / "truthy.jsonl", tmp_path / "grath.jsonl"], out, TRAIN
    )
    assert summary["steps"] >= 1 and summary["pairs"] > 12
    recorded = read_json(out / "mixmerge_train.json")
    assert recorded["hyperparameters"]["beta"] == 0.1 and recorded["versions"]["trl"]
    assert (out / "README.md").read_text().startswith("---")
    assert not list(tmp_path.glob(".model.*"))  # no partial or checkpoint folder left
    from mixmerge.model_hash import HASH_FILE, hash_record

    assert read_json(out / HASH_FILE) == hash_record(out)  # the content hash, written with it
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    AutoModelForCausalLM.from_pretrained(out)


def test_reward_accuracy_above_chance_on_easy_pairs(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = replace(TRAIN, learning_rate=5e-3, num_train_epochs=2, final_eval_pairs=24)
    summary = train_dpo(tiny_model_dir, [_easy_pairs(tmp_path / "easy.jsonl")], tmp_path / "m", cfg)
    final = read_json(tmp_path / "m" / "mixmerge_train.json")["final_metrics"]
    assert final == summary["final_metrics"]
    assert final["rewards/accuracies"] > 0.5
    assert final["rewards/margins"] > 0


def test_lora_merges_back_to_plain_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = replace(TRAIN, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    train_dpo(tiny_model_dir, [_easy_pairs(tmp_path / "easy.jsonl", 8)], tmp_path / "m", cfg)
    weights = load_file(tmp_path / "m" / "model.safetensors")
    assert not any("lora" in name for name in weights)
    assert set(weights) == set(load_file(tiny_model_dir / "model.safetensors"))


class _DieAtStep:
    """Raises after the Trainer has saved the checkpoint of `step`, like a killed job."""

    def __init__(self, step: int) -> None:
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
                if state.global_step >= outer.step:
                    raise RuntimeError("killed")

        self.step = step
        self.callback = Callback()


def test_interrupted_training_resumes_from_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = [_easy_pairs(tmp_path / "easy.jsonl", 16)]  # 4 steps of 4 pairs
    cfg = replace(TRAIN, save_steps=1)
    with pytest.raises(RuntimeError, match="killed"):
        train_dpo(tiny_model_dir, data, tmp_path / "m", cfg, callbacks=[_DieAtStep(2).callback])
    assert not (tmp_path / "m").exists()
    assert latest_checkpoint(tmp_path / ".m.checkpoints").endswith("checkpoint-2")
    summary = train_dpo(tiny_model_dir, data, tmp_path / "m", cfg)
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["steps"] == 4
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert not (tmp_path / ".m.checkpoints").exists()


def test_trl_rows_fold_system_only_for_templates_without_system_role(
    tiny_model_dir: Path,
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    pairs = [{"prompt": prompt, "chosen": "a", "rejected": "b"}]
    rows = to_trl_rows(pairs, tokenizer)
    assert rows[0]["prompt"] == prompt
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "a"}]
    # A template that raises on a system turn, as Mistral-7B-Instruct-v0.2's does.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
        "{% endif %}[INST] {{ m['content'] }} [/INST]{% endfor %}"
    )
    assert to_trl_rows(pairs, tokenizer)[0]["prompt"] == [{"role": "user", "content": "S\n\nU"}]
