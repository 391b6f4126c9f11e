"""`data:` and `datasets:` as DataSettings: the defaults, the config's values, max_samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmerge.config import ConfigError, load
from mixmerge.data.settings import DatasetSettings, DataSettings

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    settings = DataSettings.from_config({})
    assert settings == DataSettings(
        max_samples_per_dataset=None, on_bad_row="error", max_chars=None, dedup="pair", seed=0
    )
    assert settings.datasets == {}
    dataset = DatasetSettings(loader="grath")
    assert dataset.split == "train" and dataset.path is dataset.name is dataset.revision is None
    assert dataset.data_files is None and dataset.max_samples is None


def test_reads_the_config() -> None:
    cfg = load(REPO / "config" / "config.yaml")
    settings = DataSettings.from_config(cfg)
    assert (settings.max_chars, settings.dedup, settings.on_bad_row) == (4000, "pair", "error")
    assert settings.seed == 0 and set(settings.datasets) == set(cfg["datasets"])
    grath = settings.dataset("grath")
    assert grath.loader == "grath" and grath.data_files == cfg["datasets"]["grath"]["data_files"]
    assert grath.split == cfg["datasets"]["grath"]["split"]


def test_max_samples_per_dataset_unless_the_dataset_says() -> None:
    cfg = {
        "seed": 7,
        "data": {"max_samples_per_dataset": 16},
        "datasets": {
            "inherits": {"loader": "grath", "data_files": ["a.jsonl", "b.jsonl"]},
            "own": {"loader": "grath", "max_samples": 4},
            "all": {"loader": "grath", "max_samples": None},  # null: every pair, whatever the cap
        },
    }
    settings = DataSettings.from_config(cfg)
    assert settings.seed == 7
    assert settings.dataset("inherits").max_samples == 16
    assert settings.dataset("inherits").data_files == ("a.jsonl", "b.jsonl")
    assert settings.dataset("own").max_samples == 4
    assert settings.dataset("all").max_samples is None


def test_bad_values_are_one_line_errors() -> None:
    settings = DataSettings.from_config({"datasets": {"grath": {"loader": "grath"}}})
    with pytest.raises(ConfigError, match=r"^unknown dataset 'gr4th' \(config defines: grath\)$"):
        settings.dataset("gr4th")
    with pytest.raises(ConfigError, match=r"^config error: 'data.on_bad_row': unknown mode 'drop'"):
        DataSettings(on_bad_row="drop")
