"""`mixtures:` as MixSettings: the defaults, the config's values, the sweep forms, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmerge.config import ConfigError, load
from mixmerge.mix.settings import (
    AdcRewardModelSettings,
    ArmormSettings,
    HeuristicSettings,
    HummerSettings,
    MixSettings,
    OnPolicySettings,
    RewardModelSettings,
)
from mixmerge.naming import SweepSettings

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    settings = MixSettings.from_config({})
    assert settings == MixSettings(strategies=(), cache_dir=None, sweep=None, seed=0)
    assert settings.armorm is None
    assert settings.heuristic == HeuristicSettings(
        ratios=(0.2, 0.1, 0.05),
        size="paper",
        helpful_groups=("helpfulness", "helpful_honest", "helpful_harmless"),
        other_groups=("honesty", "harmlessness"),
        budget=None,
    )
    assert settings.hummer == HummerSettings(
        threshold=0.05, budget=None, pool_size=None, chunk=64, judge=None, adc="reward_models"
    )
    assert OnPolicySettings() == OnPolicySettings(
        samples_per_prompt=5, temperature=0.8, top_p=0.95, max_new_tokens=4096, chunk_prompts=64
    )
    armorm = ArmormSettings.from_block({"reward_model": {"path": "rm"}})
    assert (armorm.mode, armorm.budget, armorm.pool_size, armorm.min_margin) == (
        "relabel", None, None, 0.0,
    )  # fmt: skip
    assert armorm.reward_model == RewardModelSettings(
        path="rm", dtype="auto", batch_size=8, max_length=4096, objective=None, device=None
    )
    adc = AdcRewardModelSettings(path="rm")
    assert (adc.test_fraction, adc.learning_rate, adc.epochs, adc.batch_size) == (0.2, 1e-5, 1.0, 8)
    assert (adc.max_length, adc.dtype, adc.max_pairs_per_dimension) == (1024, "float32", None)


def test_reads_the_paper_config() -> None:
    cfg = load(REPO / "config" / "paper" / "llama3-8b.yaml")
    settings = MixSettings.from_config(cfg)
    assert settings.strategies == ("heuristic", "armorm", "hummer") and settings.seed == 42
    assert settings.sweep is None  # same: the group models' grid
    assert settings.armorm is not None and settings.armorm.mode == "on_policy"
    assert settings.armorm.on_policy.chunk_prompts == 256
    assert settings.armorm.reward_model.architecture == "armorm"
    assert settings.hummer.reward_models is not None
    assert settings.hummer.reward_models.max_pairs_per_dimension == 5000
    assert settings.hummer.judge is None  # the evaluation judge


def test_sweep_forms() -> None:
    assert MixSettings.from_block({"sweep": "same"}).sweep is None
    assert MixSettings.from_block({"sweep": "none"}).sweep == SweepSettings()
    grid = MixSettings.from_block({"sweep": {"beta": [0.1, 0.5]}}).sweep
    assert grid == SweepSettings(beta=(0.1, 0.5), learning_rate=None)
    with pytest.raises(ConfigError, match="^config error: 'mixtures.sweep': same, none or a"):
        MixSettings.from_block({"sweep": "all"})


def test_on_policy_null_max_new_tokens_stays_null() -> None:
    """null means the evaluation's generation length, so it must not become the default."""
    block = {"reward_model": {"path": "rm"}, "on_policy": {"max_new_tokens": None}}
    assert ArmormSettings.from_block(block).on_policy.max_new_tokens is None


def test_the_adc_reward_models_are_read_back_with_their_own_settings() -> None:
    adc = AdcRewardModelSettings(path="base", batch_size=4, max_length=256, dtype="bfloat16")
    assert adc.scorer("trained") == RewardModelSettings(
        path="trained", batch_size=4, max_length=256, dtype="bfloat16"
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"armorm": {"mode": "online", "reward_model": {"path": "rm"}}}, "'mixtures.armorm.mode'"),
        ({"armorm": {"mode": "relabel"}}, "'mixtures.armorm.reward_model' is required"),
        ({"hummer": {"adc": "vibes"}}, "'mixtures.hummer.adc': 'vibes' (allowed: reward_models"),
        ({"heuristic": {"size": "big"}}, "'mixtures.heuristic.size'"),
    ],
)
def test_bad_values_are_one_line_errors(block: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MixSettings.from_block(block)
    assert message in str(info.value) and "\n" not in str(info.value)
