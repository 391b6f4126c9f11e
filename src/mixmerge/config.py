"""Load and validate a workflow config: JSON schema first, then the cross-references it can't express."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mixmerge.catalog import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the offending key."""


def _where(path: list[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _first_error(errors: list[Any]) -> str:
    import jsonschema

    error = jsonschema.exceptions.best_match(errors)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = _where([*path, extra[0]]) if extra else _where(path)
        return f"unknown key '{key}'" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if "propertyNames" in error.schema_path:  # a bad key name, reported as a bad value
        allowed = error.validator_value if error.validator == "enum" else None
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown name '{_where([*path, error.instance])}'{hint}"
    if error.validator == "required":
        return f"'{_where(path)}': {error.message}"
    return f"'{_where(path)}': {error.message}"


def validate(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Raise ConfigError with one clear line for the first problem; return the config."""
    import jsonschema

    if not isinstance(config, dict):
        raise ConfigError("config must be a mapping")
    if schema_path.is_file():
        schema = yaml.safe_load(schema_path.read_text())
        if "benchmark_id" in schema.get("$defs", {}):  # the catalog names the benchmarks
            schema["$defs"]["benchmark_id"]["enum"] = list(catalog())
        validator = jsonschema.Draft202012Validator(schema)
        errors = list(validator.iter_errors(config))
        if errors:
            raise ConfigError(f"config error: {_first_error(errors)}")
    for group, names in config.get("groups", {}).items():
        for name in names:
            if name not in config.get("datasets", {}):
                raise ConfigError(
                    f"config error: 'groups.{group}': unknown dataset '{name}' "
                    f"(defined under datasets: {', '.join(sorted(config.get('datasets', {})))})"
                )
    groups = set(config.get("groups", {}))
    for setting, members in config.get("merge", {}).get("settings", {}).items():
        for group in members:
            if group not in groups:
                raise ConfigError(
                    f"config error: 'merge.settings.{setting}': group '{group}' is not under groups"
                )
    for k, group in enumerate(config.get("continual", {}).get("stages", []), 1):
        if group not in groups:
            raise ConfigError(
                f"config error: 'continual.stages': stage {k} group '{group}' is not under groups"
            )
    methods = config.get("merge", {}).get("methods", {})
    for kind, sweep in config.get("merge", {}).get("sweeps", {}).items():
        for method in sweep.get("methods", []):
            if method not in methods:
                raise ConfigError(
                    f"config error: 'merge.sweeps.{kind}.methods': unknown merge method '{method}'"
                )
    return config


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}".splitlines()[0]) from None
    return validate(config)


def group_of(config: dict[str, Any], dataset: str) -> str:
    for group, names in config["groups"].items():
        if dataset in names:
            return group
    raise ConfigError(f"config error: dataset '{dataset}' is in no group")
