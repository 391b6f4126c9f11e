"""Turn a `merge.methods.<name>` config entry into a MergeKit-style recipe YAML.

The models of a setting are the selected DPO model of each of its groups (read from the
selection files), merged onto the base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mixmerge.io import atomic_file
from mixmerge.merge.settings import RecipeSettings
from mixmerge.selection import selected_model

# Methods that combine the models themselves and take no base model (MergeKit's `linear`).
NO_BASE_METHODS = {"linear"}


def setting_models(settings: RecipeSettings, setting: str) -> dict[str, str]:
    """group -> model directory of the selected DPO model, for the groups of `setting`."""
    if setting not in settings.settings:
        raise ValueError(
            f"unknown merge setting '{setting}' "
            f"(merge.settings defines: {', '.join(settings.settings)})"
        )
    root = settings.run_dir
    return {
        group: str(root / "models" / selected_model(root / "selection" / "dpo" / f"{group}.json"))
        for group in settings.settings[setting]
    }


def build_recipe(
    settings: RecipeSettings,
    method: str,
    base: str,
    models: dict[str, str],
    variant: str | None = None,
) -> dict[str, Any]:
    """The recipe of `method` over `models` (group -> path); `variant` is `seed<N>` or `density<D>`."""
    if method not in settings.methods:
        raise ValueError(
            f"unknown merge method '{method}' "
            f"(merge.methods defines: {', '.join(settings.methods)})"
        )
    entry = settings.methods[method]
    recipe: dict[str, Any] = {"merge_method": entry.merge_method}
    if entry.merge_method not in NO_BASE_METHODS:
        recipe["base_model"] = base
    shared = dict(entry.model_parameters)
    if variant and variant.startswith("density"):
        shared["density"] = float(variant[len("density") :])
    weights = entry.weights  # a preference vector over groups (Rewarded Soup)
    recipe["models"] = []
    for group, path in models.items():
        params = dict(shared)
        if group in weights:
            params["weight"] = float(weights[group])
        recipe["models"].append(
            {"model": path, "parameters": params} if params else {"model": path}
        )
    if entry.parameters:
        recipe["parameters"] = dict(entry.parameters)
    recipe["dtype"] = entry.dtype or settings.dtype
    if entry.out_dtype:
        recipe["out_dtype"] = entry.out_dtype
    return recipe


def write_recipe(
    settings: RecipeSettings,
    method: str,
    setting: str,
    out: str | Path,
    variant: str | None = None,
) -> dict[str, Any]:
    """Write the recipe of `method` over the selected models of `setting`; return it."""
    base = str(settings.run_dir / "models" / "base")
    recipe = build_recipe(settings, method, base, setting_models(settings, setting), variant)
    with atomic_file(out) as handle:
        yaml.safe_dump(recipe, handle, sort_keys=False)
    return recipe
