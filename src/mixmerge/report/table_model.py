"""A report table as data: its rows (one model each), the best/second marks and the bootstrap
statistics behind the intervals. `tables` builds them, `table_notes` writes their notes and
`table_render` prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from mixmerge.report.scores import Summary
from mixmerge.report.stats import Bootstrap, Interval


@dataclass
class Row:
    section: str  # Base | Group model | Data mixture | Continual | Model merging
    label: str
    model_id: str | None  # None: no model could be named (e.g. several candidates, no selection)
    summary: Summary | None  # None: no scores at all -> every cell n/a
    ranked: bool = False  # merge rows compete for best / second-best
    note: str = ""

    def value(self, column: str) -> Decimal | None:
        return None if self.summary is None else self.summary.get(column)

    def partial(self, column: str) -> bool:
        return self.summary is not None and self.summary.is_partial(column)

    def unparsed(self, column: str) -> int:
        return 0 if self.summary is None else self.summary.unparsed.get(column, 0)


@dataclass
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    marks: dict[tuple[int, str], str] = field(default_factory=dict)  # (row, column) -> best|second
    stats: Bootstrap | None = None  # intervals and paired tests, from the samples files
    ties: dict[str, set[str]] = field(default_factory=dict)  # best|second -> columns it is shared in

    def interval(self, i: int, column: str) -> Interval | None:
        row = self.rows[i]
        if self.stats is None or row.model_id is None or row.value(column) is None:
            return None
        return self.stats.interval(column, row.model_id)
