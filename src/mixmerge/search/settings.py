"""`search:` of the config, typed once: the study, the held-out items and the spaces.

    search:
      setting: static          # the merge setting whose selected group models are searched
      trials: 24               # finished trials per space (a resumed study runs only the rest)
      sampler: nsga2           # nsga2 | tpe (Optuna's multi-objective samplers)
      seed: 0                  # the sampler's seed (default: the config's seed)
      items: 200               # held-out items per benchmark (null: all)
      benchmarks: {}           # {id: overrides}: of an evaluated benchmark's config for its
                               # held-out items (OR-Bench-80k's files), or the config of one that
                               # is not evaluated (e.g. truthfulqa_mc2 as the honesty objective)
      exclude: []              # evaluated benchmarks left out of the objectives
      in_memory: true          # merge each trial into one resident model (hf backend only)
      generation: {}           # overrides of evaluate.generation for the held-out items (e.g.
                               # backend: hf where the tables are generated with vLLM)
      select: [best_avg, knee] # + {name: <point>, weights: {helpful: 1, honest: 1, harmless: 2}}
      spaces:
        <name>: {merge_method, parameters, model_parameters, search: {<param>: <range>}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mixmerge.catalog import GROUPS
from mixmerge.search.spaces import Space

SAMPLERS = ("nsga2", "tpe")
BUILT_IN_POINTS = ("best_avg", "knee")


@dataclass(frozen=True)
class Point:
    """A point of the front to merge and evaluate on the test items: `best_avg` (the best mean
    of the three dev objectives), `knee`, or a user-weighted mean of the objectives."""

    name: str
    weights: dict[str, float] = field(default_factory=dict)  # empty: a built-in point

    @classmethod
    def from_entry(cls, entry: Any) -> Point:
        if isinstance(entry, str):
            if entry not in BUILT_IN_POINTS:
                raise ValueError(
                    f"search.select: unknown point {entry!r} (built in: {', '.join(BUILT_IN_POINTS)};"
                    " or {name, weights})"
                )
            return cls(entry)
        weights = {str(k): float(v) for k, v in dict(entry.get("weights") or {}).items()}
        bad = sorted(set(weights) - set(GROUPS))
        if bad or not weights or any(w < 0 for w in weights.values()) or not sum(weights.values()):
            raise ValueError(
                f"search.select.{entry.get('name')}: weights must be non-negative, not all zero, "
                f"over {', '.join(GROUPS)} (got {dict(entry.get('weights') or {})})"
            )
        return cls(str(entry["name"]), weights)


@dataclass(frozen=True)
class SearchSettings:
    setting: str
    trials: int
    sampler: str
    seed: int
    items: int | None
    benchmarks: dict[str, dict[str, Any]]
    exclude: tuple[str, ...]
    in_memory: bool
    generation: dict[str, Any]
    select: tuple[Point, ...]
    spaces: dict[str, Space]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SearchSettings:
        block = dict(cfg.get("search") or {})
        if not block:
            raise ValueError("the config has no search: block")
        sampler = block.get("sampler", "nsga2")
        if sampler not in SAMPLERS:
            raise ValueError(f"search.sampler: {sampler!r} (known: {', '.join(SAMPLERS)})")
        points = tuple(Point.from_entry(e) for e in block.get("select", BUILT_IN_POINTS))
        names = [p.name for p in points]
        if len(set(names)) != len(names):
            raise ValueError(f"search.select names a point twice: {names}")
        spaces = {
            name: Space.from_block(name, entry) for name, entry in dict(block["spaces"]).items()
        }
        setting = block.get("setting", "static")
        if setting not in cfg["merge"]["settings"]:
            raise ValueError(
                f"search.setting: {setting!r} is not a merge setting "
                f"(merge.settings: {', '.join(cfg['merge']['settings'])})"
            )
        return cls(
            setting=setting,
            trials=int(block.get("trials", 24)),
            sampler=sampler,
            seed=int(block.get("seed", cfg.get("seed", 0))),
            items=None if block.get("items", 200) is None else int(block.get("items", 200)),
            benchmarks={k: dict(v or {}) for k, v in dict(block.get("benchmarks") or {}).items()},
            exclude=tuple(block.get("exclude") or ()),
            in_memory=bool(block.get("in_memory", True)),
            generation=dict(block.get("generation") or {}),
            select=points,
            spaces=spaces,
        )

    @property
    def point_names(self) -> list[str]:
        return [p.name for p in self.select]
