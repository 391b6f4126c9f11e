"""Fixture pair files (pair format) for the mixture tests, and the tiny reward model."""

from __future__ import annotations

from pathlib import Path

import pytest
from mix_helpers import write_pair_files


@pytest.fixture
def pair_files(tmp_path: Path) -> dict[str, Path]:
    sizes = {
        "helpsteer": 40,
        "py_dpo": 30,
        "distilabel_orca": 20,
        "distilabel_capybara": 10,
        "ultrasafety": 12,
        "truthy_dpo": 9,
        "grath": 6,
        "ultrafeedback": 25,
        "pku_saferlhf": 15,
        "nectar": 10,
    }
    return write_pair_files(tmp_path / "pairs", sizes)


@pytest.fixture(scope="session")
def tiny_reward_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mixmerge.tiny.reward_model import build_tiny_reward_model

    out = tmp_path_factory.mktemp("tiny_rm") / "reward_model"
    build_tiny_reward_model(out, tiny_model_dir, seed=0)
    return out
