"""Turn a `merge.methods.<name>` config entry into a MergeKit-style recipe YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mixmerge.io import atomic_file

# Methods that combine the models themselves and take no base model (MergeKit's `linear`).
NO_BASE_METHODS = {"linear"}


def build_recipe(cfg: dict[str, Any], method: str, base: str, models: list[str]) -> dict[str, Any]:
    methods = cfg["merge"]["methods"]
    if method not in methods:
        raise ValueError(
            f"unknown merge method '{method}' (merge.methods defines: {', '.join(methods)})"
        )
    entry = methods[method]
    recipe: dict[str, Any] = {"merge_method": entry["merge_method"]}
    if entry["merge_method"] not in NO_BASE_METHODS:
        recipe["base_model"] = base
    per_model = dict(entry.get("model_parameters") or {})
    recipe["models"] = [
        {"model": m, "parameters": dict(per_model)} if per_model else {"model": m} for m in models
    ]
    if entry.get("parameters"):
        recipe["parameters"] = dict(entry["parameters"])
    recipe["dtype"] = entry.get("dtype", cfg["merge"].get("dtype", "float32"))
    if entry.get("out_dtype"):
        recipe["out_dtype"] = entry["out_dtype"]
    return recipe


def write_recipe(
    cfg: dict[str, Any], method: str, base: str, models: list[str], out: str | Path
) -> None:
    recipe = build_recipe(cfg, method, base, models)
    with atomic_file(out) as handle:
        yaml.safe_dump(recipe, handle, sort_keys=False)
