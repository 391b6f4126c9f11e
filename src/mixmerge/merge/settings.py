"""What a merge recipe is written from (config `merge`), as typed settings with their defaults.

Built once from the validated config (`RecipeSettings.from_config`); the schema has already
rejected unknown keys and wrong types, and `mixmerge.config.validate` that every setting's groups
exist. Only what `mixmerge.merge.from_config` reads is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MergeMethodSettings:
    """One `merge.methods.<name>` entry: a registered method and the parts of its recipe."""

    merge_method: str
    parameters: dict[str, Any] = field(default_factory=dict)  # the method's global parameters
    model_parameters: dict[str, Any] = field(default_factory=dict)  # given to every model
    weights: dict[str, float] = field(default_factory=dict)  # group -> weight (Rewarded Soup)
    dtype: str | None = None  # None: merge.dtype
    out_dtype: str | None = None  # None: the merge's dtype
    tokenizer: dict[str, Any] | None = None  # MergeKit's tokenizer block; None: merge.tokenizer

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> MergeMethodSettings:
        values = dict(block)
        for name in ("parameters", "model_parameters", "weights"):  # null: none
            values[name] = dict(values.get(name) or {})
        return cls(**values)


@dataclass(frozen=True)
class RecipeSettings:
    """The run, its merge settings (setting -> groups) and methods, and the default dtype."""

    run: str
    settings: dict[str, tuple[str, ...]]
    methods: dict[str, MergeMethodSettings]
    dtype: str = "float32"
    tokenizer: dict[str, Any] | None = None  # every recipe's tokenizer block (vocabularies differ)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RecipeSettings:
        merge = cfg["merge"]
        given = {key: merge[key] for key in ("dtype", "tokenizer") if key in merge}  # else default
        return cls(
            run=cfg["run"],
            settings={name: tuple(groups) for name, groups in merge["settings"].items()},
            methods={
                name: MergeMethodSettings.from_block(entry)
                for name, entry in merge["methods"].items()
            },
            **given,
        )

    @property
    def run_dir(self) -> Path:
        return Path("results") / self.run
