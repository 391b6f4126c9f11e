"""`train:` as TrainSettings: the defaults, the config's values, trl's names, and the old names
rejected in one line."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from mixmerge.config import ConfigError, load, validate
from mixmerge.naming import SweepSettings
from mixmerge.train.settings import LoraSettings, TrainSettings

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    settings = TrainSettings.from_config({"train": {"beta": 0.1, "learning_rate": 5e-7}})
    assert (settings.beta, settings.learning_rate) == (0.1, 5e-7)
    assert settings.num_train_epochs == 1.0 and settings.per_device_train_batch_size == 1
    assert settings.gradient_accumulation_steps == 1 and settings.global_batch_size is None
    assert settings.max_length == 4096 and settings.lr_scheduler_type == "cosine"
    assert settings.warmup_steps == 0.1 and settings.optim == "adamw_torch"
    assert not settings.bf16 and not settings.gradient_checkpointing
    assert settings.device == "cuda" and settings.gpus == 1 and settings.save_steps == 0
    assert settings.accelerate_config == "workflow/accelerate/zero3.yaml"
    assert settings.final_eval_pairs == 0 and settings.selection == "AVG" and settings.seed == 0
    assert settings.lora is None and settings.sweep == SweepSettings()
    assert LoraSettings() == LoraSettings(r=16, alpha=32, dropout=0.05, target_modules="all-linear")


def test_reads_the_paper_config() -> None:
    cfg = load(REPO / "config" / "paper" / "llama3-8b.yaml")
    settings = TrainSettings.from_config(cfg)
    assert settings.learning_rate == 5e-7 and settings.per_device_train_batch_size == 2
    assert settings.global_batch_size == 128 and settings.gpus == 8 and settings.bf16
    assert settings.warmup_steps == 0.1 and settings.lr_scheduler_type == "cosine"
    assert settings.sweep == SweepSettings(beta=(0.1, 0.5, 1.0, 2.0), learning_rate=(3e-7, 5e-7))
    assert settings.seed == 42  # the top-level seed
    assert len(settings.candidates()) == 8


def test_lora_and_candidate_overrides() -> None:
    block = {"beta": 0.1, "learning_rate": 1e-6, "lora": {"r": 4, "target_modules": ["q_proj"]}}
    settings = TrainSettings.from_block(block)
    assert settings.lora == LoraSettings(r=4, target_modules=("q_proj",))
    picked = settings.with_candidate(beta=0.5, learning_rate=None)
    assert (picked.beta, picked.learning_rate, picked.lora) == (0.5, 1e-6, settings.lora)
    record = picked.record()  # mixmerge_train.json's hyperparameters: every field, as JSON
    assert record["beta"] == 0.5 and record["lora"]["r"] == 4 and record["optim"] == "adamw_torch"
    assert set(record) == {f.name for f in dataclasses.fields(TrainSettings)}


def test_a_sweep_side_left_out_takes_the_train_value() -> None:
    settings = TrainSettings(beta=0.1, learning_rate=1e-6, sweep=SweepSettings(beta=(0.1, 0.5)))
    assert settings.candidates() == {"b0.1-lr1e-06": (0.1, 1e-6), "b0.5-lr1e-06": (0.5, 1e-6)}
    assert settings.candidates(SweepSettings()) == {"b0.1-lr1e-06": (0.1, 1e-6)}


def test_names_that_mean_a_dpo_config_field_are_trl_s() -> None:
    from trl import DPOConfig

    trl_fields = {f.name for f in dataclasses.fields(DPOConfig)}
    ours = {f.name for f in dataclasses.fields(TrainSettings)}
    shared = {
        "beta", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_length", "lr_scheduler_type", "warmup_steps", "optim",
        "bf16", "gradient_checkpointing", "save_steps", "seed",
    }  # fmt: skip
    assert shared <= trl_fields and shared <= ours
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    keys = set(schema["properties"]["train"]["properties"])
    assert keys == ours - {"seed"}  # the seed is the config's top-level one


@pytest.mark.parametrize(
    "old", ["epochs", "per_device_batch_size", "lr_scheduler", "warmup_ratio", "optimizer"]
)
def test_an_old_name_is_an_unknown_key(old: str) -> None:
    config = copy.deepcopy(load(REPO / "config" / "config.yaml"))
    config["train"][old] = config["train"]["beta"]
    with pytest.raises(ConfigError) as info:
        validate(config)
    message = str(info.value)
    assert message.startswith(f"config error: unknown key 'train.{old}' (allowed: ")
    assert "num_train_epochs" in message and "\n" not in message


@pytest.mark.parametrize(("value", "ok"), [(0.1, True), (10, True), (1.5, False), (-1, False)])
def test_warmup_steps_is_a_share_or_a_step_count(value: float, ok: bool) -> None:
    config = copy.deepcopy(load(REPO / "config" / "config.yaml"))
    config["train"]["warmup_steps"] = value
    if ok:
        assert TrainSettings.from_config(validate(config)).warmup_steps == value
    else:
        with pytest.raises(ConfigError, match="'train.warmup_steps'"):
            validate(config)
