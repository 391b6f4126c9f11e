"""The benchmark catalog: one declaration per benchmark, `mixmerge/evaluate/tasks/<id>.yaml`.

As lm-eval indexes its task folder, this module indexes that folder, and no list elsewhere names
a benchmark: the evaluate registry, the config schema's benchmark names, the report's columns and
3H groups, the API-key warning, `mixmerge fetch` and the tiny build all read it. A declaration:

    id        the benchmark id (the file's stem; the config's `evaluate.benchmarks` key)
    title     its column title in the tables
    group     helpful | honest | harmless: the 3H group it belongs to
    order     its column position (the paper's column order for the paper's benchmarks)
    scale     percent (0-100, a rate x 100) | rating (MT-Bench's raw 1-10)
    paper     true = one of the paper's 11 columns, in its 3H averages; false = an extra column,
              shown when scored, never in an average
    judged    true = an LLM judge scores it (evaluate.judge, overridden by its own `judge`)
    runner    lm_eval | evalplus | judged | mt_bench: the code that runs it
    options   the runner's options (see the runner's module docstring)
    hub       the hub or URL data its jobs read without `data_files` (what `mixmerge fetch`
              mirrors): {datasets: [{path, names, splits}]} and/or {urls: [url]}
    fixture   "module:function" writing its tiny-profile fixture files (tiny/)
    dev       where `mixmerge search` scores it, on items disjoint from the reported ones:
              {split, key} (lm_eval: another split of the source), {key[, data]} (judged: the
              source's items outside the reported ones, `data` naming another hub config), or
              {unavailable: why} (left out of the search's objectives); `key` is the row field
              whose text identifies an item (its content hash)

This module reads only YAML: loading a config or the report imports no benchmark code.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TASKS_DIR = Path(__file__).resolve().parent / "evaluate" / "tasks"
GROUPS = ("helpful", "honest", "harmless")
SCALES = ("percent", "rating")
RUNNERS = ("lm_eval", "evalplus", "judged", "mt_bench")
_KEYS = {
    "id", "title", "group", "order", "scale", "paper", "judged", "runner", "options", "hub",
    "fixture", "dev",
}  # fmt: skip


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's declaration (see the module docstring)."""

    id: str
    title: str
    group: str
    order: int
    runner: str
    scale: str = "percent"
    paper: bool = False
    judged: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    hub: Mapping[str, Any] = field(default_factory=dict)
    fixture: str | None = None
    dev: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dev_unavailable(self) -> str | None:
        """Why the search cannot score this benchmark on held-out items (None: it can)."""
        if not self.dev:
            return "no held-out source is declared"
        return self.dev.get("unavailable")

    @property
    def multiplier(self) -> float:
        """What a rate of good items is multiplied by to give the score (rating: 1)."""
        return 1.0 if self.scale == "rating" else 100.0

    def good_verdicts(self, item: Mapping[str, Any]) -> tuple[str, ...]:
        """A judged benchmark's verdicts that count as good for this item (row or sample): its
        `positive` option, a list, or {by: <field>, <value>: [...]} when it depends on the item."""
        positive = self.options.get("positive") or ()
        if isinstance(positive, Mapping):
            return tuple(positive.get(str(item.get(positive["by"])), ()))
        return tuple(positive)


def _parse(path: Path) -> Benchmark:
    where = f"benchmark declaration {path}"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    missing = [k for k in ("id", "title", "group", "order", "runner") if k not in data]
    if missing:
        raise ValueError(f"{where}: lacks {', '.join(missing)}")
    if data["id"] != path.stem:
        raise ValueError(f"{where}: id {data['id']!r} differs from the file name {path.stem!r}")
    for key, allowed in (("group", GROUPS), ("runner", RUNNERS), ("scale", SCALES)):
        if key in data and data[key] not in allowed:
            raise ValueError(f"{where}: {key} {data[key]!r} (allowed: {', '.join(allowed)})")
    dev = data.get("dev") or {}
    if dev and "unavailable" not in dev and "key" not in dev:
        raise ValueError(f"{where}: dev needs `key` (the field identifying an item) or `unavailable`")
    return Benchmark(
        **{**data, "options": data.get("options") or {}, "hub": data.get("hub") or {}, "dev": dev}
    )


@functools.cache
def catalog(tasks_dir: Path = TASKS_DIR) -> dict[str, Benchmark]:
    """Every declared benchmark, id -> declaration, in column order."""
    found = [_parse(path) for path in sorted(tasks_dir.glob("*.yaml"))]
    orders = [b.order for b in found]
    if len(set(orders)) != len(orders):
        clash = sorted({b.id for b in found if orders.count(b.order) > 1})
        raise ValueError(f"benchmark declarations share a column order: {', '.join(clash)}")
    return {b.id: b for b in sorted(found, key=lambda b: b.order)}


def benchmark(name: str) -> Benchmark:
    """The declaration of `name`; a clear error naming the known ones otherwise."""
    known = catalog()
    if name not in known:
        raise ValueError(f"unknown benchmark {name!r} (known: {', '.join(known)})")
    return known[name]


def paper_benchmarks() -> dict[str, Benchmark]:
    """The paper's 11 columns, in its order."""
    return {k: b for k, b in catalog().items() if b.paper}


def paper_groups() -> dict[str, tuple[str, ...]]:
    """The paper's 3H averages: title ("Helpful Avg", ...) -> its benchmarks, in column order."""
    return {
        f"{group.capitalize()} Avg": tuple(n for n, b in paper_benchmarks().items() if b.group == group)
        for group in GROUPS
    }


def judged_benchmarks() -> tuple[str, ...]:
    return tuple(k for k, b in catalog().items() if b.judged)
