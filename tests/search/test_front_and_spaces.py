"""The front's arithmetic on hand-derived points, and search spaces against the methods' own
parameter declarations (every bad input a clear error)."""

from __future__ import annotations

import math

import optuna
import pytest

from mixmerge.search.front import best_weighted, hypervolume, knee, non_dominated
from mixmerge.search.settings import Point, SearchSettings
from mixmerge.search.spaces import Space

GROUPS = ["helpfulness", "honesty", "harmlessness"]


def test_non_dominated_keeps_ties_and_drops_dominated() -> None:
    points = {0: (1.0, 1.0, 1.0), 1: (2.0, 1.0, 1.0), 2: (1.0, 2.0, 1.0), 3: (2.0, 1.0, 1.0)}
    assert non_dominated(points) == [1, 2, 3]


def test_hypervolume_by_hand() -> None:
    assert hypervolume([(1.0, 1.0, 1.0)]) == 1.0
    # two boxes 2x1x1 and 1x2x1 overlapping in a unit cube: 2 + 2 - 1
    assert hypervolume([(2.0, 1.0, 1.0), (1.0, 2.0, 1.0)]) == 3.0
    # a dominated point adds nothing; a point on the reference point's face adds nothing
    assert hypervolume([(2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (3.0, 0.0, 5.0)]) == 8.0
    # (3,1,1) + (1,3,1) + (1,1,3): 3 + 3 + 3 - 1 - 1 - 1 + 1 = 7
    assert hypervolume([(3.0, 1.0, 1.0), (1.0, 3.0, 1.0), (1.0, 1.0, 3.0)]) == 7.0
    assert hypervolume([(2.0, 3.0), (3.0, 1.0)], (0.0, 0.0)) == 2 * 3 + 1 * 1


def test_knee_and_weighted_points() -> None:
    front = {0: (90.0, 10.0, 50.0), 1: (60.0, 60.0, 50.0), 2: (10.0, 90.0, 50.0)}
    assert knee(front) == 1  # the constant third objective is ignored
    assert best_weighted(front, [1.0, 1.0, 1.0]) == 1
    assert best_weighted(front, [1.0, 0.0, 0.0]) == 0
    assert best_weighted(front, [0.0, 1.0, 1.0]) == 2


def _trial(seed: int = 0) -> optuna.trial.Trial:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize"] * 3, sampler=optuna.samplers.RandomSampler(seed))
    return study.ask()


def test_simplex_weights_sum_to_one_and_make_a_linear_recipe() -> None:
    space = Space.from_block(
        "soup", {"merge_method": "linear", "parameters": {"normalize": True}, "search": {"weight": "simplex"}}
    )
    values = space.suggest(_trial(), GROUPS)
    assert math.isclose(sum(values["weight"].values()), 1.0)
    assert all(v > 0 for v in values["weight"].values())
    recipe = space.recipe(values, {g: f"/m/{g}" for g in GROUPS}, "/m/base", "float32")
    assert "base_model" not in recipe  # MergeKit's linear takes no base
    assert [m["parameters"]["weight"] for m in recipe["models"]] == [values["weight"][g] for g in GROUPS]
    assert recipe["parameters"] == {"normalize": True}


def test_global_shared_and_per_model_parameters_land_where_the_method_declares_them() -> None:
    space = Space.from_block(
        "ties",
        {
            "merge_method": "ties",
            "model_parameters": {"weight": 1.0},
            "search": {"lambda": [0.5, 1.5], "density": {"low": 0.2, "high": 0.9, "per_model": True}},
        },
    )
    values = space.suggest(_trial(1), GROUPS)
    recipe = space.recipe(values, {g: f"/m/{g}" for g in GROUPS}, "/m/base", "bfloat16")
    assert recipe["base_model"] == "/m/base" and recipe["dtype"] == "bfloat16"
    assert 0.5 <= recipe["parameters"]["lambda"] <= 1.5
    densities = [m["parameters"]["density"] for m in recipe["models"]]
    assert len(set(densities)) == 3 and all(0.2 <= d <= 0.9 for d in densities)
    assert all(m["parameters"]["weight"] == 1.0 for m in recipe["models"])


def test_the_same_seed_proposes_the_same_values() -> None:
    space = Space.from_block("r", {"merge_method": "r_tsvm", "search": {"scale": [0.5, 2], "gamma": [0.5, 2]}})
    assert space.suggest(_trial(7), GROUPS) == space.suggest(_trial(7), GROUPS)
    assert space.suggest(_trial(7), GROUPS) != space.suggest(_trial(8), GROUPS)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"merge_method": "nope", "search": {"x": [0, 1]}}, "not a registered method"),
        ({"merge_method": "ties", "search": {"alpha": [0, 1]}}, "ties has no parameter 'alpha'"),
        ({"merge_method": "ties", "search": {"density": [0.3, 1.5]}}, "out of range"),
        ({"merge_method": "ties", "search": {"lambda": {"low": 0.5, "high": 1, "per_model": True}}}, "lambda is global"),
        ({"merge_method": "ties", "search": {"density": [0.9, 0.3]}}, "low < high"),
        ({"merge_method": "tsvm", "search": {"alpha": "simplex"}}, "simplex is for a per-model"),
        ({"merge_method": "tsvm", "search": {}}, "names no parameter"),
        ({"merge_method": "ties", "search": {"weight": {"low": 0, "high": 1, "log": True}}}, "log range needs low > 0"),
    ],
)
def test_bad_spaces_are_one_line_errors(block: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        Space.from_block("s", block).check()
    assert "search.spaces.s" in str(err.value) and "\n" not in str(err.value)


def test_settings_reject_bad_points_samplers_and_settings() -> None:
    cfg = {"merge": {"settings": {"static": GROUPS}}, "search": {"spaces": {}}}
    with pytest.raises(ValueError, match="unknown point 'best'"):
        Point.from_entry("best")
    with pytest.raises(ValueError, match="weights must be non-negative"):
        Point.from_entry({"name": "x", "weights": {"helpful": -1}})
    with pytest.raises(ValueError, match="search.sampler"):
        SearchSettings.from_config({**cfg, "search": {"spaces": {}, "sampler": "cmaes"}})
    with pytest.raises(ValueError, match="search.setting: 'continual'"):
        SearchSettings.from_config({**cfg, "search": {"spaces": {}, "setting": "continual"}})
    with pytest.raises(ValueError, match="names a point twice"):
        SearchSettings.from_config({**cfg, "search": {"spaces": {}, "select": ["knee", "knee"]}})
