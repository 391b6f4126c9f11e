"""A search space: one registered merge method, its fixed parameters, and the ones searched.

    rewarded_soup: {merge_method: linear, parameters: {normalize: true}, search: {weight: simplex}}
    ties:
      merge_method: ties
      search:
        lambda: [0.5, 1.5]                                  # a global parameter
        weight: {low: 0.5, high: 1.5, per_model: true}      # one value per group model
        density: [0.3, 0.9]                                 # one value shared by the models
    r_tsvm: {merge_method: r_tsvm, search: {scale: [0.5, 2.0], gamma: [0.5, 2.0]}}

A range is [low, high] or {low, high, log, per_model}; `{choices: [...]}` is categorical;
`simplex` (per-model only) puts one weight per group model on the simplex (Rewarded Soup's
preference vector): w_g = -log(u_g) / sum, u_g uniform, i.e. a flat Dirichlet. Whether a name is a
global or a per-model parameter, and its allowed range, come from the method's own declaration
(mixmerge.merge.methods), so a space can search any parameter of any registered method.

Parsing a space reads only its config (the workflow does it at start, without importing torch);
`Space.check()` reads the method's declarations, and the search's jobs call it before any work.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Dimension:
    """One searched parameter."""

    name: str
    per_model: bool  # a per-model parameter (else global)
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    simplex: bool = False
    separate: bool = False  # per-model: one value per model (else one shared value)


def _dimension(space: str, method_name: str, name: str, spec: Any) -> Dimension:
    """One searched parameter, checked against the method's declaration of it."""
    from mixmerge.merge.registry import METHODS

    where = f"search.spaces.{space}.search.{name}"
    method = METHODS[method_name]
    declared = {p.name: (p, False) for p in method.global_params}
    declared.update({p.name: (p, True) for p in method.model_params})
    if name not in declared:
        raise ValueError(
            f"{where}: {method_name} has no parameter {name!r} "
            f"(it has: {', '.join(sorted(declared))})"
        )
    param, per_model = declared[name]
    if spec == "simplex":
        if not per_model:
            raise ValueError(f"{where}: simplex is for a per-model parameter (a weight)")
        return Dimension(name, True, simplex=True, separate=True)
    if isinstance(spec, Mapping) and "choices" in spec:
        choices = tuple(spec["choices"])
        for c in choices:
            param.coerce(c, f" ({where})")
        return Dimension(name, per_model, choices=choices, separate=bool(spec.get("per_model")))
    if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 2:
        spec = {"low": spec[0], "high": spec[1]}
    if not isinstance(spec, Mapping) or "low" not in spec or "high" not in spec:
        raise ValueError(f"{where}: give [low, high], {{low, high, log, per_model}}, {{choices}} or simplex")
    low, high = float(spec["low"]), float(spec["high"])
    if param.kind not in (float, int) or not low < high:
        raise ValueError(f"{where}: a numeric range low < high, got [{low}, {high}]")
    try:  # the method's own range check
        param.coerce(low, f" ({where}.low)")
        param.coerce(high, f" ({where}.high)")
    except Exception as err:  # MergeError: a ValueError to the search's callers
        raise ValueError(str(err)) from None
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0")
    separate = bool(spec.get("per_model", False))
    if separate and not per_model:
        raise ValueError(f"{where}: per_model is for a per-model parameter; {name} is global")
    return Dimension(name, per_model, low, high, log, separate=separate)


@dataclass(frozen=True)
class Space:
    name: str
    merge_method: str
    parameters: dict[str, Any] = field(default_factory=dict)
    model_parameters: dict[str, Any] = field(default_factory=dict)
    searched: dict[str, Any] = field(default_factory=dict)  # param -> its range, as configured
    dtype: str | None = None

    @classmethod
    def from_block(cls, name: str, block: Mapping[str, Any]) -> Space:
        searched = dict(block.get("search") or {})
        if not searched:
            raise ValueError(f"search.spaces.{name}: `search` names no parameter to search")
        return cls(
            name=name,
            merge_method=str(block.get("merge_method")),
            parameters=dict(block.get("parameters") or {}),
            model_parameters=dict(block.get("model_parameters") or {}),
            searched=searched,
            dtype=block.get("dtype"),
        )

    @functools.cached_property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The searched parameters, checked against the method's declarations."""
        from mixmerge.merge.registry import METHODS

        if self.merge_method not in METHODS:
            raise ValueError(
                f"search.spaces.{self.name}.merge_method: {self.merge_method!r} is not a "
                f"registered method (known: {', '.join(METHODS)})"
            )
        return tuple(
            _dimension(self.name, self.merge_method, key, spec) for key, spec in self.searched.items()
        )

    def check(self) -> Space:
        """Raise a one-line ValueError for a parameter or range the method does not take."""
        _ = self.dimensions
        return self

    def suggest(self, trial: Any, groups: Sequence[str]) -> dict[str, Any]:
        """The trial's values: {param: value} for global and shared ones, {param: {group: v}}
        for per-model ones (a simplex normalised to sum 1)."""
        values: dict[str, Any] = {}
        for d in self.dimensions:
            if d.simplex:
                raw = {g: -math.log(trial.suggest_float(f"{d.name}[{g}]", 1e-6, 1.0)) for g in groups}
                total = sum(raw.values())
                values[d.name] = {g: v / total for g, v in raw.items()}
            elif d.separate:
                values[d.name] = {g: _suggest(trial, f"{d.name}[{g}]", d) for g in groups}
            else:
                values[d.name] = _suggest(trial, d.name, d)
        return values

    def recipe(
        self, values: Mapping[str, Any], models: Mapping[str, str], base: str, dtype: str
    ) -> dict[str, Any]:
        """The MergeKit-style recipe of one point of the space over `models` (group -> path)."""
        from mixmerge.merge.from_config import NO_BASE_METHODS

        per_model = {d.name for d in self.dimensions if d.per_model}
        recipe: dict[str, Any] = {"merge_method": self.merge_method}
        if self.merge_method not in NO_BASE_METHODS:
            recipe["base_model"] = base
        recipe["models"] = []
        for group, path in models.items():
            params = dict(self.model_parameters)
            for name in per_model:
                value = values[name]
                params[name] = value[group] if isinstance(value, Mapping) else value
            recipe["models"].append({"model": path, "parameters": params} if params else {"model": path})
        params = {**self.parameters, **{k: v for k, v in values.items() if k not in per_model}}
        if params:
            recipe["parameters"] = params
        recipe["dtype"] = self.dtype or dtype
        return recipe


def _suggest(trial: Any, label: str, d: Dimension) -> Any:
    if d.choices:
        return trial.suggest_categorical(label, list(d.choices))
    return trial.suggest_float(label, float(d.low), float(d.high), log=d.log)
