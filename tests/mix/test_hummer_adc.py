"""ADC the Hummer way: per-dimension reward models, on a hand-worked 3-dimension case and on the
tiny reward model through the real training code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mix_helpers import make_pairs

from mixmerge.mix.hummer_adc import adc_from_accuracies, reward_model_adc, split_by_dimension
from mixmerge.mix.settings import AdcRewardModelSettings


def test_adc_from_accuracies_on_a_hand_worked_case() -> None:
    # acc(RM_0, T_j), then acc(RM_k, T_j) after fine-tuning on dimension k alone
    reference = {"helpfulness": 0.80, "honesty": 0.70, "harmlessness": 0.90}
    tuned = {
        "helpfulness": {"helpfulness": 0.90, "honesty": 0.60, "harmlessness": 0.80},
        "honesty": {"helpfulness": 0.80, "honesty": 0.80, "harmlessness": 0.95},
        "harmlessness": {"helpfulness": 0.70, "honesty": 0.70, "harmlessness": 0.95},
    }
    adc, deltas = adc_from_accuracies(reference, tuned)
    # 6 off-diagonal deviations: -0.10, -0.10 | 0.00, +0.05 | -0.10, 0.00; the gains count as 0
    assert deltas["helpfulness"] == pytest.approx({"honesty": -0.10, "harmlessness": -0.10})
    assert deltas["honesty"] == pytest.approx({"helpfulness": 0.0, "harmlessness": 0.05})
    assert deltas["harmlessness"] == pytest.approx({"helpfulness": -0.10, "honesty": 0.0})
    assert adc == pytest.approx(math.sqrt(3 * 0.10**2 / 6))  # 0.0707
    assert adc_from_accuracies(reference, {k: dict(reference) for k in reference})[0] == 0.0


def test_split_is_seeded_and_keeps_both_sides() -> None:
    pairs = make_pairs("helpsteer", "helpfulness", 10) + make_pairs("truthy_dpo", "honesty", 3)
    dims = ["helpfulness"] * 10 + ["honesty"] * 3 + []
    train, test = split_by_dimension(pairs, dims, 0.2, seed=1, max_train=5)
    assert (len(train["helpfulness"]), len(test["helpfulness"])) == (5, 2)  # capped train side
    assert (len(train["honesty"]), len(test["honesty"])) == (2, 1)
    assert split_by_dimension(pairs, dims, 0.2, seed=1, max_train=5) == (train, test)


def test_reward_model_adc_on_the_tiny_reward_model(
    tiny_reward_model_dir: Path, tmp_path: Path
) -> None:
    """1 + 3 reward models trained with trl's RewardTrainer; ADC is the formula applied to the
    accuracies they measured."""
    pairs = (
        make_pairs("helpsteer", "helpfulness", 6)
        + make_pairs("truthy_dpo", "honesty", 6)
        + make_pairs("ultrasafety", "harmlessness", 6)
    )
    dims = ["helpfulness"] * 6 + ["honesty"] * 6 + ["harmlessness"] * 6
    cfg = AdcRewardModelSettings(
        path=str(tiny_reward_model_dir),
        test_fraction=0.34,
        learning_rate=1e-3,
        batch_size=4,
        max_length=128,
        dtype="float32",
    )
    result = reward_model_adc(pairs, dims, cfg, seed=0, work_dir=tmp_path / "adc")
    assert result["train_pairs"] == {"harmlessness": 4, "helpfulness": 4, "honesty": 4}
    assert result["test_pairs"] == {"harmlessness": 2, "helpfulness": 2, "honesty": 2}
    accuracies = [*result["accuracy_reference"].values()] + [
        a for row in result["accuracy_tuned"].values() for a in row.values()
    ]
    assert all(a in (0.0, 0.5, 1.0) for a in accuracies)  # shares of 2 test pairs
    expected, _ = adc_from_accuracies(result["accuracy_reference"], result["accuracy_tuned"])
    assert result["adc"] == pytest.approx(expected) and 0.0 <= result["adc"] <= 1.0
    assert not list((tmp_path / "adc").glob("rm_*"))  # the trained reward models are removed
    one_dimension = reward_model_adc(pairs[:6], dims[:6], cfg, seed=0, work_dir=tmp_path / "one")
    assert one_dimension["adc"] is None and "2 dimensions" in one_dimension["not_measured"]
