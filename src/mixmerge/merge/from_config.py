"""Turn a `merge.methods.<name>` config entry into a MergeKit-style recipe YAML.

The models of a setting are the selected DPO model of each of its groups (read from the
selection files), merged onto the base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mixmerge.io import atomic_file
from mixmerge.train.select import selected_model

# Methods that combine the models themselves and take no base model (MergeKit's `linear`).
NO_BASE_METHODS = {"linear"}


def run_dir(cfg: dict[str, Any]) -> Path:
    return Path("results") / cfg["run"]


def setting_models(cfg: dict[str, Any], setting: str) -> dict[str, str]:
    """group -> model directory of the selected DPO model, for the groups of `setting`."""
    settings = cfg["merge"]["settings"]
    if setting not in settings:
        raise ValueError(
            f"unknown merge setting '{setting}' (merge.settings defines: {', '.join(settings)})"
        )
    root = run_dir(cfg)
    return {
        group: str(root / "models" / selected_model(root / "selection" / "dpo" / f"{group}.json"))
        for group in settings[setting]
    }


def build_recipe(
    cfg: dict[str, Any], method: str, base: str, models: dict[str, str], variant: str | None = None
) -> dict[str, Any]:
    """The recipe of `method` over `models` (group -> path); `variant` is `seed<N>` or `density<D>`."""
    methods = cfg["merge"]["methods"]
    if method not in methods:
        raise ValueError(
            f"unknown merge method '{method}' (merge.methods defines: {', '.join(methods)})"
        )
    entry = methods[method]
    recipe: dict[str, Any] = {"merge_method": entry["merge_method"]}
    if entry["merge_method"] not in NO_BASE_METHODS:
        recipe["base_model"] = base
    shared = dict(entry.get("model_parameters") or {})
    if variant and variant.startswith("density"):
        shared["density"] = float(variant[len("density") :])
    weights = entry.get("weights") or {}  # a preference vector over groups (Rewarded Soup)
    recipe["models"] = []
    for group, path in models.items():
        params = dict(shared)
        if group in weights:
            params["weight"] = float(weights[group])
        recipe["models"].append(
            {"model": path, "parameters": params} if params else {"model": path}
        )
    if entry.get("parameters"):
        recipe["parameters"] = dict(entry["parameters"])
    recipe["dtype"] = entry.get("dtype", cfg["merge"].get("dtype", "float32"))
    if entry.get("out_dtype"):
        recipe["out_dtype"] = entry["out_dtype"]
    return recipe


def write_recipe(
    cfg: dict[str, Any], method: str, setting: str, out: str | Path, variant: str | None = None
) -> dict[str, Any]:
    base = str(run_dir(cfg) / "models" / "base")
    recipe = build_recipe(cfg, method, base, setting_models(cfg, setting), variant)
    with atomic_file(out) as handle:
        yaml.safe_dump(recipe, handle, sort_keys=False)
    return recipe
