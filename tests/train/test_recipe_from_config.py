"""Config -> MergeKit recipe: selected models per setting, preference weights, sweep variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixmerge.io import write_json
from mixmerge.merge.from_config import write_recipe
from mixmerge.merge.settings import MergeMethodSettings, RecipeSettings

CONFIG = {
    "run": "t",
    "merge": {
        "dtype": "float32",
        "settings": {"static": ["helpfulness", "honesty"], "continual": ["honesty"]},
        "methods": {
            "weight_average": {"merge_method": "linear", "model_parameters": {"weight": 1.0}},
            "rewarded_soup": {
                "merge_method": "linear",
                "model_parameters": {"weight": 0.5},
                "weights": {"helpfulness": 0.8},
            },
            "ties": {"merge_method": "ties", "model_parameters": {"weight": 1.0, "density": 0.5}},
        },
    },
}
CFG = RecipeSettings.from_config(CONFIG)


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for group, cand in (("helpfulness", "b0.1-lr1e-06"), ("honesty", "b0.5-lr1e-06")):
        write_json(
            Path(f"results/t/selection/dpo/{group}.json"), {"selected": f"dpo/{group}/{cand}"}
        )
    return tmp_path


def test_recipe_uses_selected_models(run: Path) -> None:
    recipe = write_recipe(CFG, "ties", "static", run / "r.yaml")
    assert yaml.safe_load((run / "r.yaml").read_text()) == recipe
    assert recipe["base_model"] == "results/t/models/base"
    assert [m["model"] for m in recipe["models"]] == [
        "results/t/models/dpo/helpfulness/b0.1-lr1e-06",
        "results/t/models/dpo/honesty/b0.5-lr1e-06",
    ]
    assert recipe["models"][0]["parameters"] == {"weight": 1.0, "density": 0.5}


def test_linear_has_no_base_and_preference_weights(run: Path) -> None:
    recipe = write_recipe(CFG, "rewarded_soup", "static", run / "r.yaml")
    assert "base_model" not in recipe
    assert [m["parameters"]["weight"] for m in recipe["models"]] == [0.8, 0.5]


def test_density_variant_and_continual_setting(run: Path) -> None:
    recipe = write_recipe(CFG, "ties", "static", run / "r.yaml", variant="density0.3")
    assert {m["parameters"]["density"] for m in recipe["models"]} == {0.3}
    assert len(write_recipe(CFG, "ties", "continual", run / "c.yaml")["models"]) == 1


def test_unknown_method_or_setting(run: Path) -> None:
    with pytest.raises(ValueError, match="unknown merge method 'tiez'"):
        write_recipe(CFG, "tiez", "static", run / "r.yaml")
    with pytest.raises(ValueError, match="unknown merge setting 'dynamic'"):
        write_recipe(CFG, "ties", "dynamic", run / "r.yaml")
    assert not (run / "r.yaml").exists()


def test_settings_hold_the_defaults_and_read_the_config() -> None:
    assert CFG.run_dir == Path("results/t") and CFG.dtype == "float32"
    assert CFG.settings == {"static": ("helpfulness", "honesty"), "continual": ("honesty",)}
    assert CFG.methods["ties"] == MergeMethodSettings(
        merge_method="ties", model_parameters={"weight": 1.0, "density": 0.5}
    )
    bare = RecipeSettings.from_config(
        {"run": "r", "merge": {"settings": {"static": ["h"]}, "methods": {"m": {"merge_method": "linear"}}}}
    )
    assert bare.dtype == "float32"  # merge.dtype's default
    method = bare.methods["m"]
    assert (method.parameters, method.model_parameters, method.weights) == ({}, {}, {})
    assert method.dtype is None and method.out_dtype is None  # None: merge.dtype, as below


def test_recipe_dtype_is_the_method_s_else_the_merge_s(run: Path) -> None:
    config = {**CONFIG, "merge": {**CONFIG["merge"], "dtype": "bfloat16"}}
    config["merge"]["methods"] = {
        **CONFIG["merge"]["methods"],
        "ties_fp32": {"merge_method": "ties", "dtype": "float32", "out_dtype": "bfloat16"},
    }
    settings = RecipeSettings.from_config(config)
    assert write_recipe(settings, "ties", "static", run / "a.yaml")["dtype"] == "bfloat16"
    recipe = write_recipe(settings, "ties_fp32", "static", run / "b.yaml")
    assert (recipe["dtype"], recipe["out_dtype"]) == ("float32", "bfloat16")
