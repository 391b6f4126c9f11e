"""MergeKit-style recipe: parsing, structural validation and per-tensor parameter resolution."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mixmerge.merge.base import MergeMethod, Param
from mixmerge.merge.errors import MergeError
from mixmerge.merge.registry import get_method
from mixmerge.merge.vocab import TokenizerSpec, parse_tokenizer

log = logging.getLogger(__name__)

# MergeKit keys we honour; others MergeKit knows but we do not implement are rejected so a
# recipe never silently means something different here than in MergeKit.
_KNOWN_KEYS = {
    "merge_method",
    "base_model",
    "models",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    "tokenizer",
    "name",
}
_UNSUPPORTED_KEYS = {"modules", "chat_template"}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64,
}  # fmt: skip


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(value: Any, key: str) -> torch.dtype:
    name = str(value).removeprefix("torch.").lower()
    if name not in DTYPES:
        raise MergeError(f"{key}: unknown dtype {value!r}; use one of float32, float16, bfloat16")
    return DTYPES[name]


@dataclass(frozen=True)
class ModelEntry:
    index: int  # position in `models` (stable RNG stream id)
    label: str  # the path as written in the recipe, for messages and the model card
    path: Path
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Recipe:
    raw: dict[str, Any]
    method: MergeMethod
    base_label: str | None
    base_path: Path | None
    models: list[ModelEntry]
    params: Mapping[str, Any]  # raw global settings (may be filter lists / gradients)
    dtype: torch.dtype
    out_dtype: torch.dtype | None
    # MergeKit's `tokenizer:` block (or `tokenizer_source:`): align differing vocabularies
    tokenizer: TokenizerSpec | None = None


def _plain(value: Any) -> Any:
    """Paths -> str, mappings -> dict, tuples -> list: the recipe must dump as plain YAML."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _slices_as_models(raw: dict[str, Any]) -> dict[str, Any]:
    """MergeKit's `slices:` form of a whole-model merge (one slice whose every source spans its
    model's layers, as MergeKit's own SLERP examples write it) as the `models:` form; slices
    that stack or cut layers (frankenmerges) are refused with one line."""
    slices = raw["slices"]
    if "models" in raw:
        raise MergeError("recipe has both 'slices' and 'models': give one")
    if not isinstance(slices, list) or len(slices) != 1 or not isinstance(slices[0], Mapping):
        raise MergeError(
            "recipe 'slices': only one slice over the whole models is supported (layer "
            "stacking or cutting is not); write it as `models:` or one full-range slice"
        )
    extra = set(slices[0]) - {"sources"}
    if extra:
        raise MergeError(f"slices[0]: unsupported key {sorted(extra)[0]!r}")
    models = []
    for i, source in enumerate(slices[0].get("sources") or []):
        if not isinstance(source, Mapping) or "model" not in source:
            raise MergeError(f"slices[0].sources[{i}] must be a mapping with a 'model' key")
        unknown = set(source) - {"model", "parameters", "layer_range"}
        if unknown:
            raise MergeError(f"slices[0].sources[{i}]: unknown key {sorted(unknown)[0]!r}")
        label = _model_ref(source["model"], f"slices[0].sources[{i}]")
        if "layer_range" in source:
            layers = _num_layers(Path(label).expanduser())
            if list(source["layer_range"]) != [0, layers]:
                raise MergeError(
                    f"slices[0].sources[{i}] ({label}): layer_range {source['layer_range']} is not "
                    f"the whole model ([0, {layers}]): layer stacking or cutting is not supported"
                )
        models.append({k: v for k, v in source.items() if k != "layer_range"})
    rest = {k: v for k, v in raw.items() if k != "slices"}
    return {**rest, "models": models}


def _num_layers(model_dir: Path) -> int | None:
    config = model_dir / "config.json"
    if not config.is_file():
        raise MergeError(f"no config.json in {model_dir}: cannot check its layer_range")
    return json.loads(config.read_text(encoding="utf-8")).get("num_hidden_layers")


def _model_ref(value: Any, where: str) -> str:
    # MergeKit also accepts "path+lora" and hub ids; only local directories are supported here.
    if not isinstance(value, (str, Path)) or not str(value):
        raise MergeError(f"{where}: model must be a local directory path, got {value!r}")
    return str(value)


def _check_setting(setting: Any, where: str) -> None:
    """Accept MergeKit ParameterSetting shapes: scalar, gradient list, or filter list."""
    if isinstance(setting, (bool, int, float, str)):
        return
    if isinstance(setting, Mapping):  # a lone {filter, value}: treat as a one-item list
        extra = set(setting) - {"filter", "value"}
        if "value" not in setting or extra:
            raise MergeError(f"{where}: conditional setting needs 'value' (+ optional 'filter')")
        if setting.get("filter") is not None and not isinstance(setting["filter"], str):
            raise MergeError(f"{where}: filter must be a string")
        _check_setting(setting["value"], where)
        return
    if isinstance(setting, list) and setting:
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            return
        if all(isinstance(e, Mapping) for e in setting):
            for e in setting:
                _check_setting(e, where)
            return
    raise MergeError(f"{where}: unsupported parameter setting {setting!r}")


def evaluate_setting(tensor_name: str, setting: Any, t: float) -> Any:
    """MergeKit `evaluate_setting`: scalars as-is, numeric lists interpolated at t, string
    lists stepped, filter lists -> first entry whose filter is absent/'*'/a substring."""
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, Mapping):
        setting = [setting]
    if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    if all(isinstance(e, (bool, int, float, str)) for e in setting):
        return setting[int(t * (len(setting) - 1))]
    for cond in setting:
        flt = cond.get("filter")
        if flt is None or flt == "*" or (tensor_name and flt in tensor_name):
            return evaluate_setting(tensor_name, cond["value"], t)
    return None


_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def gradient_t(tensor_name: str, num_layers: int) -> float:
    """Position used by gradient parameters, as MergeKit's planner assigns it: layer i of n
    gets i/(n-1); pre-layer weights (embeddings) 0; post-layer weights (norm, lm_head) 1."""
    m = _LAYER_RE.search(tensor_name)
    if m:
        return int(m.group(1)) / (num_layers - 1) if num_layers > 1 else 1.0
    return 0.0 if "embed" in tensor_name else 1.0


def load_recipe(recipe: str | Path | Mapping[str, Any]) -> Recipe:
    if isinstance(recipe, (str, Path)):
        path = Path(recipe)
        if not path.is_file():
            raise MergeError(f"recipe file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise MergeError(f"recipe {path}: invalid YAML ({str(err).splitlines()[0]})") from None
    else:
        raw = recipe
    if not isinstance(raw, Mapping):
        raise MergeError("recipe must be a mapping with merge_method and models")
    raw = _plain(raw)
    if "slices" in raw:
        raw = _slices_as_models(raw)

    for key in raw:
        if key in _UNSUPPORTED_KEYS:
            raise MergeError(f"recipe key {key!r} is not supported by mixmerge.merge")
        if key not in _KNOWN_KEYS:
            raise MergeError(f"unknown recipe key {key!r}")

    method = get_method(raw.get("merge_method"))
    gnames = {p.name for p in method.global_params}
    mnames = {p.name for p in method.model_params}

    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise MergeError("recipe 'parameters' must be a mapping")
    declared = {p.name: p for p in (*method.global_params, *method.model_params)}
    for key, setting in params.items():
        if key not in gnames | mnames:
            raise MergeError(f"unknown parameter {key!r} for merge_method {method.name}")
        if declared[key].kind is list:  # literal list (may be empty), checked here once
            declared[key].coerce(setting, f" (parameters.{key})")
        else:
            _check_setting(setting, f"parameters.{key}")

    models_raw = raw.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise MergeError("recipe 'models' must be a non-empty list")
    models = []
    for i, item in enumerate(models_raw):
        if not isinstance(item, Mapping) or "model" not in item:
            raise MergeError(f"models[{i}] must be a mapping with a 'model' key")
        extra = set(item) - {"model", "parameters"}
        if extra:
            raise MergeError(f"models[{i}]: unknown key {sorted(extra)[0]!r}")
        label = _model_ref(item["model"], f"models[{i}]")
        mparams = item.get("parameters") or {}
        if not isinstance(mparams, Mapping):
            raise MergeError(f"models[{i}] ({label}): 'parameters' must be a mapping")
        for key, setting in mparams.items():
            if key not in mnames:
                raise MergeError(
                    f"unknown parameter {key!r} for model {label} (merge_method {method.name})"
                )
            if declared[key].kind is list:
                declared[key].coerce(setting, f" (models[{i}].parameters.{key})")
            else:
                _check_setting(setting, f"models[{i}].parameters.{key}")
        models.append(ModelEntry(i, label, Path(label).expanduser(), dict(mparams)))

    base_label = None
    if raw.get("base_model") is not None:
        base_label = _model_ref(raw["base_model"], "base_model")
    if method.needs_base and base_label is None:
        raise MergeError(f"merge_method {method.name} requires base_model")

    return Recipe(
        raw=raw,
        method=method,
        base_label=base_label,
        base_path=Path(base_label).expanduser() if base_label else None,
        models=models,
        params=dict(params),
        dtype=parse_dtype(raw.get("dtype") or "float32", "dtype"),
        out_dtype=parse_dtype(raw["out_dtype"], "out_dtype") if raw.get("out_dtype") else None,
        tokenizer=parse_tokenizer(raw),
    )


def _evaluate(p: Param, tensor_name: str, setting: Any, t: float) -> Any:
    # A list-valued parameter (e.g. a name filter list) is taken literally, not as a gradient.
    if p.kind is list:
        return setting
    return evaluate_setting(tensor_name, setting, t)


def resolve_global(recipe: Recipe, p: Param, tensor_name: str, t: float) -> Any:
    if p.name in recipe.params:
        value = _evaluate(p, tensor_name, recipe.params[p.name], t)
        if value is not None:
            return p.coerce(value, f" at tensor {tensor_name}")
    if p.required:
        raise MergeError(f"missing required parameter {p.name!r} at tensor {tensor_name}")
    return p.default


def resolve_model(recipe: Recipe, entry: ModelEntry, p: Param, tensor_name: str, t: float) -> Any:
    """Model's own setting first, then the global `parameters:` (MergeKit precedence)."""
    where = f" for model {entry.label} at tensor {tensor_name}"
    for source in (entry.params, recipe.params):
        if p.name in source:
            value = _evaluate(p, tensor_name, source[p.name], t)
            if value is not None:
                return p.coerce(value, where)
    if p.required:
        raise MergeError(f"missing required parameter {p.name!r}{where}")
    return p.default
