"""The `data:` block and the `datasets:` entries as typed settings: every data default lives here.

Built once from the validated config (`DataSettings.from_config`); the schema has already
rejected unknown keys and wrong types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mixmerge.config import ConfigError

# `data.dedup`: which repeats within one dataset are dropped. `pair`: exact duplicate pairs (same
# prompt, chosen and rejected), so a prompt with several distinct pairs (PKU-SafeRLHF, Nectar)
# keeps them all, as the paper trains on the full data; `prompt`: only the first pair per prompt;
# `none`: nothing.
DEDUP_MODES = ("pair", "prompt", "none")
BAD_ROW_MODES = ("error", "skip")

DataFiles = str | tuple[str, ...] | dict[str, str] | None


@dataclass(frozen=True)
class DatasetSettings:
    """One `datasets.<name>` entry: where its rows come from and how many pairs it keeps."""

    loader: str  # the row schema (mixmerge.data.loaders.LOADERS)
    path: str | None = None  # hub id
    name: str | None = None  # hub config name
    split: str = "train"  # of the hub dataset, or the key of a {split: path} data_files
    revision: str | None = None
    data_files: DataFiles = None  # local files in the hub schema (then the hub is not read)
    # a seeded sample of the cleaned pairs; from_config fills in data.max_samples_per_dataset
    # when the entry has no key of its own (an explicit null there keeps every pair)
    max_samples: int | None = None

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> DatasetSettings:
        values = dict(block)
        files = values.get("data_files")
        if isinstance(files, list):
            values["data_files"] = tuple(files)
        return cls(**values)


@dataclass(frozen=True)
class DataSettings:
    """How every dataset is cleaned (config `data`), and the datasets themselves."""

    max_samples_per_dataset: int | None = None  # None: every pair
    on_bad_row: str = "error"  # a row that does not fit its schema: error | skip (counted)
    max_chars: int | None = None  # prompt + longest answer above this: dropped
    dedup: str = "pair"  # see DEDUP_MODES
    seed: int = 0  # the config's top-level `seed` (the max_samples sample)
    datasets: dict[str, DatasetSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dedup not in DEDUP_MODES:
            raise ConfigError(
                f"config error: 'data.dedup': unknown mode {self.dedup!r} "
                f"(allowed: {', '.join(DEDUP_MODES)})"
            )
        if self.on_bad_row not in BAD_ROW_MODES:
            raise ConfigError(
                f"config error: 'data.on_bad_row': unknown mode {self.on_bad_row!r} "
                f"(allowed: {', '.join(BAD_ROW_MODES)})"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DataSettings:
        """Settings from the whole validated config: `data`, `datasets` and top-level `seed`."""
        values: dict[str, Any] = dict(cfg.get("data") or {})
        if "seed" in cfg:
            values["seed"] = cfg["seed"]
        cap = values.get("max_samples_per_dataset")
        values["datasets"] = {
            name: DatasetSettings.from_block({"max_samples": cap, **block})
            for name, block in (cfg.get("datasets") or {}).items()
        }
        return cls(**values)

    def dataset(self, name: str) -> DatasetSettings:
        """The settings of one configured dataset; a one-line error names the configured ones."""
        if name not in self.datasets:
            raise ConfigError(
                f"unknown dataset '{name}' (config defines: {', '.join(self.datasets)})"
            )
        return self.datasets[name]
