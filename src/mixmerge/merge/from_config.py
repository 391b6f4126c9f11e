"""Turn a `merge.methods.<name>` config entry into a MergeKit-style recipe YAML.

The models of a setting are the selected DPO model of each of its groups (read from the
selection files), merged onto the base model. A recipe gets `merge.methods.<name>.tokenizer`,
else `merge.tokenizer` (MergeKit's tokenizer block, mixmerge.merge.vocab) when one is set.

`vocab_warnings` is what `snakemake -n` says, before any merge starts, about recipes whose
models' vocabularies differ; it reads config.json and tokenizer.json only (no torch), and only
of the models that exist already (the base, from the run, a local path, the hub mirror or the
Hugging Face cache; a group's selected model once selected).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mixmerge import hub
from mixmerge.io import atomic_file
from mixmerge.merge.errors import MergeError
from mixmerge.merge.settings import RecipeSettings
from mixmerge.merge.vocab import mismatch_line, parse_tokenizer
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
    tokenizer = entry.tokenizer if entry.tokenizer is not None else settings.tokenizer
    if tokenizer:
        recipe["tokenizer"] = dict(tokenizer)
    return recipe


def _recipe_models(recipe: Mapping[str, Any]) -> list[tuple[str, Path]]:
    labels = [recipe["base_model"]] if recipe.get("base_model") else []
    labels += [m["model"] for m in recipe.get("models") or []]
    return [(str(label), Path(str(label)).expanduser()) for label in labels]


def recipe_vocab_warning(recipe: Mapping[str, Any], where: str = "to the recipe") -> str | None:
    """One line when the recipe's models' vocabularies differ (see mixmerge.merge.vocab)."""
    return mismatch_line(_recipe_models(recipe), parse_tokenizer(recipe), where)


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


def _hub_cache_snapshot(repo: str, revision: str | None) -> Path | None:
    """The Hugging Face cache's snapshot of a model repo, found without importing the hub client."""
    root = (
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
    )
    folder = Path(root) / f"models--{repo.replace('/', '--')}"
    ref = folder / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    snapshot = folder / "snapshots" / commit
    return snapshot if commit and snapshot.is_dir() else None


def base_model_dir(config: Mapping[str, Any], run_dir: Path) -> Path | None:
    """The base model's directory, where one exists already: the run's models/base, else the
    config's base_model as a local path, from the hub mirror or from the Hugging Face cache."""
    built = run_dir / "models" / "base"
    if built.is_dir():
        return built
    spec = config.get("base_model") or {}
    path, revision = str(spec.get("path") or ""), spec.get("revision")
    if not path:
        return None
    if not hub.is_hub_id(path):
        local = Path(path).expanduser()
        return local if local.is_dir() else None
    try:
        source, _ = hub.model_source(path, revision)
    except hub.MirrorError:
        return None
    if Path(source).is_dir():
        return Path(source)
    return _hub_cache_snapshot(path, revision)


def vocab_warnings(config: Mapping[str, Any]) -> list[str]:
    """One line per recipe (setting/method) whose existing models' vocabularies differ, saying
    whether its tokenizer block handles it. A bad tokenizer block raises ValueError naming its
    key. The sweep recipes are the static setting's, with the same models and block."""
    settings = RecipeSettings.from_config(config)
    root = settings.run_dir
    base_dir = base_model_dir(config, root)
    lines = []
    for setting, groups in settings.settings.items():
        picked: list[tuple[str, Path]] = []  # (model id, directory) of each selected group
        for group in groups:
            selection = root / "selection" / "dpo" / f"{group}.json"
            if selection.is_file():
                try:
                    model_id = selected_model(selection)
                except (ValueError, KeyError, OSError):
                    continue  # a broken selection: its own rule names it
                picked.append((model_id, root / "models" / model_id))
        for method, entry in settings.methods.items():
            own = entry.tokenizer is not None
            key = f"merge.methods.{method}.tokenizer" if own else "merge.tokenizer"
            try:
                spec = parse_tokenizer(
                    {"tokenizer": entry.tokenizer if own else settings.tokenizer}
                )
            except MergeError as err:
                raise ValueError(f"{key}: {err}") from None
            models = list(picked)
            if entry.merge_method not in NO_BASE_METHODS and base_dir is not None:
                models.insert(0, ("base", base_dir))
            line = mismatch_line(
                models, spec, where=f"to merge.tokenizer or merge.methods.{method}.tokenizer"
            )
            if line:
                lines.append(f"merge recipe {setting}/{method}: {line}")
    return lines
