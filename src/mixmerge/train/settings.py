"""The `train:` block as typed settings: every training default lives in a field here.

Keys that mean the same as a trl `DPOConfig` (transformers `TrainingArguments`) field carry its
name (`num_train_epochs`, `per_device_train_batch_size`, `lr_scheduler_type`, `warmup_steps`,
`optim`, ...); the others (`global_batch_size`, `gpus`, `lora`, `sweep`, ...) are mixmerge's own.
Built once from the validated config (`TrainSettings.from_config`); the schema has already
rejected unknown keys and wrong types, so the builders only turn lists into tuples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mixmerge.naming import SweepSettings, sweep_candidates

__all__ = ["LoraSettings", "SweepSettings", "TrainSettings"]


@dataclass(frozen=True)
class LoraSettings:
    """`train.lora`: adapters trained with peft, merged back into plain weights after training."""

    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> LoraSettings:
        values = dict(block)
        modules = values.get("target_modules")
        if modules is not None and not isinstance(modules, str):
            values["target_modules"] = tuple(modules)
        return cls(**values)


@dataclass(frozen=True)
class TrainSettings:
    """One DPO recipe (config `train`), as every training job of the run uses it."""

    beta: float
    learning_rate: float
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 1
    # used as given only when global_batch_size is unset (else derived from it)
    gradient_accumulation_steps: int = 1
    max_length: int = 4096
    lr_scheduler_type: str = "cosine"
    # transformers reads a value < 1 as a share of the training steps, >= 1 as a step count
    warmup_steps: float = 0.1
    optim: str = "adamw_torch"
    bf16: bool = False
    gradient_checkpointing: bool = False
    save_steps: int = 0  # 0: no checkpoints
    device: str = "cuda"  # cpu forces CPU even where a GPU is visible
    global_batch_size: int | None = None  # per-device x accumulation x devices (paper: 128)
    gpus: int = 1  # devices per training job; > 1 runs `accelerate launch`
    accelerate_config: str | None = "workflow/accelerate/zero3.yaml"  # null: accelerate's own
    final_eval_pairs: int = 0  # training pairs scored after training (0: none)
    lora: LoraSettings | None = None  # None: full-parameter training
    sweep: SweepSettings = field(default_factory=SweepSettings)
    selection: str = "AVG"  # the criterion that keeps one candidate per group
    seed: int = 0  # the config's top-level `seed`

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> TrainSettings:
        """Settings from a `train:` mapping (keys = field names)."""
        values = dict(block)
        if values.get("lora") is not None:
            values["lora"] = LoraSettings.from_block(values["lora"])
        values["sweep"] = SweepSettings.from_block(values.get("sweep"))
        return cls(**values)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrainSettings:
        """Settings from the whole validated config: its `train` block and top-level `seed`."""
        run = {"seed": cfg["seed"]} if "seed" in cfg else {}
        return cls.from_block({**cfg["train"], **run})

    def with_candidate(
        self, beta: float | None = None, learning_rate: float | None = None
    ) -> TrainSettings:
        """These settings with one sweep candidate's beta and learning rate (None keeps)."""
        changes: dict[str, float] = {}
        if beta is not None:
            changes["beta"] = float(beta)
        if learning_rate is not None:
            changes["learning_rate"] = float(learning_rate)
        return dataclasses.replace(self, **changes)

    def candidates(self, sweep: SweepSettings | None = None) -> dict[str, tuple[float, float]]:
        """candidate name -> (beta, learning rate) over `sweep` (None: train.sweep)."""
        return sweep_candidates(
            self.sweep if sweep is None else sweep, self.beta, self.learning_rate
        )

    def record(self) -> dict[str, Any]:
        """A JSON-ready copy (mixmerge_train.json's `hyperparameters`)."""
        return dataclasses.asdict(self)
