"""Score loading and the paper's 3H averages, computed exactly as the paper does.

Every benchmark number is rounded half-up to two decimals (the number printed in the table);
the group averages are means of those printed numbers, rounded half-up again, and AVG is the
mean of the three *rounded* group averages. All arithmetic is decimal, so 78.595 -> 78.60 and
not 78.59 as binary `round` would give. A reader recomputing an average from the printed table
therefore gets the printed average.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from mixmerge.catalog import catalog, paper_benchmarks, paper_groups
from mixmerge.selection import Selections

log = logging.getLogger(__name__)

# benchmark id -> column title, in the paper's column order (the catalog's paper benchmarks).
COLUMNS: dict[str, str] = {name: b.title for name, b in paper_benchmarks().items()}
# Group averages as the paper computes them (MT-Bench enters on its raw 1-10 scale).
GROUPS: dict[str, tuple[str, ...]] = paper_groups()
# Benchmarks beyond the paper (its columns after the paper's, when scored; in no average).
EXTRA_COLUMNS: dict[str, str] = {
    name: b.title for name, b in catalog().items() if name not in COLUMNS
}
# every benchmark's column title: the paper's, then the extra ones
TITLES: dict[str, str] = {**COLUMNS, **EXTRA_COLUMNS}
AVG = "AVG"
AVERAGES: tuple[str, ...] = (*GROUPS, AVG)
ALL_COLUMNS: tuple[str, ...] = (*COLUMNS.values(), *AVERAGES)


def table_columns(summaries: Iterable[Summary | None]) -> tuple[str, ...]:
    """The paper's columns and averages, then each extra benchmark that any row has scored."""
    rows = [s for s in summaries if s is not None]
    extra = [t for t in EXTRA_COLUMNS.values() if any(s.get(t) is not None for s in rows)]
    return (*ALL_COLUMNS, *extra)
_CENT = Decimal("0.01")


def round2(value: float | Decimal) -> Decimal:
    """Half-up decimal rounding to two places of the number as written (repr), not its binary value."""
    dec = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return dec.quantize(_CENT, rounding=ROUND_HALF_UP)


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


@dataclass
class Summary:
    """One model's table row: printed numbers (None = n/a) and which averages are partial."""

    values: dict[str, Decimal | None]
    partial: list[str] = field(default_factory=list)
    # average title -> the benchmarks it was computed over (to compare like with like)
    basis: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # column title -> judge replies left out of that score as unparsable (only those with any)
    unparsed: dict[str, int] = field(default_factory=dict)

    def get(self, title: str) -> Decimal | None:
        return self.values.get(title)

    def is_partial(self, title: str) -> bool:
        return title in self.partial


def summarize(
    scores: Mapping[str, float], unparsed: Mapping[str, int] | None = None
) -> Summary:
    """The 11 printed benchmark numbers and the 4 averages of one model's scores; `unparsed`
    (benchmark -> n_unparsed of its score file) marks the cells computed without some items."""
    values: dict[str, Decimal | None] = {}
    printed: dict[str, Decimal] = {}
    for bench, title in COLUMNS.items():
        value = scores.get(bench)
        values[title] = None if value is None else round2(value)
        if value is not None:
            printed[bench] = round2(value)
    partial: list[str] = []
    basis: dict[str, tuple[str, ...]] = {}
    group_avgs: list[Decimal] = []
    avg_basis: list[str] = []
    for title, members in GROUPS.items():
        present = [b for b in members if b in printed]
        basis[title] = tuple(present)
        avg_basis += present
        if present:
            values[title] = round2(_mean([printed[b] for b in present]))
            group_avgs.append(values[title])
        else:
            values[title] = None
        if len(present) < len(members):
            partial.append(title)
    # AVG over the ROUNDED group averages, as the paper does; partial if any group is.
    values[AVG] = round2(_mean(group_avgs)) if group_avgs else None
    basis[AVG] = tuple(avg_basis)
    if partial:
        partial.append(AVG)
    for bench, title in EXTRA_COLUMNS.items():  # beyond the paper: printed, in no average
        if scores.get(bench) is not None:
            values[title] = round2(scores[bench])
    left_out = {
        TITLES[b]: int(n) for b, n in (unparsed or {}).items() if b in TITLES and int(n) > 0
    }
    return Summary(values, partial, basis, left_out)


def load_records(scores_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{model id: {benchmark: score record}} from <scores_dir>/<model id>/<benchmark>.json.

    Files that are not score records (no numeric `score`) are skipped with a warning, so a
    copied results folder with stray JSON still gives tables.
    """
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(scores_dir.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            float(record["score"])
        except (ValueError, KeyError, TypeError, OSError):
            log.warning("skipping %s: not a score record", path)
            continue
        bench = record.get("benchmark") or path.stem
        model_id = path.parent.relative_to(scores_dir).as_posix()
        table.setdefault(model_id, {})[str(bench)] = record
    return table


def scores_of(records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """{model id: {benchmark: score}} of loaded records."""
    return {m: {b: float(r["score"]) for b, r in rs.items()} for m, rs in records.items()}


def load_scores(scores_dir: Path) -> dict[str, dict[str, float]]:
    """{model id: {benchmark: score}} from <scores_dir>/<model id>/<benchmark>.json."""
    return scores_of(load_records(scores_dir))


def unparsed_of(
    records: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, int]]:
    """{model id: {benchmark: n_unparsed}} for the judged scores that left replies out."""
    return {
        m: {b: int(r["n_unparsed"]) for b, r in rs.items() if r.get("n_unparsed")}
        for m, rs in records.items()
    }


def summarize_all(
    scores: Mapping[str, Mapping[str, float]],
    unparsed: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Summary]:
    unparsed = unparsed or {}
    return {model_id: summarize(s, unparsed.get(model_id)) for model_id, s in scores.items()}


# --- which model stands for a group / the heuristic mixture -----------------------------------


def candidates(prefix: str, model_ids: Iterable[str]) -> list[str]:
    """Model ids that are `prefix` itself or one level below it (sweep candidates)."""
    return sorted(
        m for m in model_ids if m == prefix or re.fullmatch(re.escape(prefix) + r"/[^/]+", m)
    )


def resolve(
    prefix: str, selections: Selections, model_ids: Iterable[str]
) -> tuple[str | None, str]:
    """(model id standing for `prefix`, how it was chosen).

    The selection file wins; without one, the sole candidate is used, and several candidates
    with no selection give None (n/a) rather than a silent pick.
    """
    if prefix in selections.chosen:
        return selections.chosen[prefix], "selected"
    found = candidates(prefix, model_ids)
    if len(found) == 1:
        return found[0], "sole candidate"
    if found:
        return None, f"{len(found)} candidates and no selection file"
    return None, "no scores"
