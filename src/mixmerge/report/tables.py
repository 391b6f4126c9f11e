"""The paper's 3H tables: static (Tables 3/4), continual (Tables 5/10) and the R-TSVM ablation
(Tables 6/7), each written as Markdown, CSV, LaTeX and HTML (the HTML is what the Snakemake
report shows).

Rows are built from a directory of score files alone (the DESIGN.md contract), plus the
optional selection files naming each group's chosen DPO candidate and the heuristic ratio.
Missing numbers print as "n/a"; an average over fewer benchmarks than it should have is still
shown but flagged partial (`*`), and partial averages never compete for best/second place
against complete ones. A judged score that left some unparsable judge replies out (under
`evaluate.max_unparsed_fraction`; above it no score is written) is flagged `†`, with the counts
in the notes.

This module builds the tables (which model goes in which row, the best/second marks) and writes
them; `table_notes` words their notes, `table_render` prints them in each format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.io import atomic_file
from mixmerge.report.labels import (
    ABLATION_METHODS,
    CONTINUAL_STAGES,
    GROUP_LABELS,
    MIXTURE_LABELS,
    method_label,
    method_order,
)
from mixmerge.report.scores import (
    AVERAGES,
    AVG,
    COLUMNS,
    GROUPS,
    Selections,
    Summary,
    load_records,
    resolve,
    scores_of,
    summarize_all,
    table_columns,
    unparsed_of,
)
from mixmerge.report.stats import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    intervals_csv,
    load_bootstrap,
)
from mixmerge.report.table_model import Row, Table
from mixmerge.report.table_notes import notes_for
from mixmerge.report.table_render import RENDERERS

TABLES = ("static", "continual", "ablation", "comparisons")
FORMATS = ("md", "csv", "tex", "html")


# --- which models go in which table -----------------------------------------------------------


def _direct_children(prefix: str, model_ids: Iterable[str]) -> list[str]:
    """Names `x` of ids `<prefix>/x` (one level: sweep variants `<prefix>/x/seed1` excluded)."""
    pattern = re.compile(re.escape(prefix) + r"/([^/]+)")
    return sorted({m.group(1) for i in model_ids if (m := pattern.fullmatch(i))})


def _first_level(prefix: str, model_ids: Iterable[str], selections: Selections) -> list[str]:
    """Names `x` of every id `<prefix>/x[/...]` or selection key `<prefix>/x`."""
    pattern = re.compile(re.escape(prefix) + r"/([^/]+)")
    names = {m.group(1) for i in [*model_ids, *selections.chosen] if (m := pattern.match(i))}
    return sorted(names)


def _row(
    section: str,
    label: str,
    model_id: str | None,
    summaries: Mapping[str, Summary],
    ranked: bool = False,
    note: str = "",
) -> Row:
    summary = summaries.get(model_id) if model_id else None
    return Row(section, label, model_id, summary, ranked, note)


def _chosen_row(
    section: str,
    prefix: str,
    label: str,
    summaries: Mapping[str, Summary],
    selections: Selections,
) -> Row:
    model_id, how = resolve(prefix, selections, summaries)
    if prefix == "mix/heuristic" and model_id is not None and model_id.startswith(prefix + "/"):
        # mix/heuristic/<ratio>[/<candidate>]: the ratio kept
        label = f"{label} ({model_id[len(prefix) + 1 :].split('/')[0]})"
    return _row(section, label, model_id, summaries, note=how)


def _group_rows(summaries: Mapping[str, Summary], selections: Selections) -> list[Row]:
    groups = list(GROUP_LABELS)
    groups += [g for g in _first_level("dpo", summaries, selections) if g not in GROUP_LABELS]
    return [
        _chosen_row("Group model", f"dpo/{g}", GROUP_LABELS.get(g, g), summaries, selections)
        for g in groups
    ]


def _mixture_rows(summaries: Mapping[str, Summary], selections: Selections) -> list[Row]:
    names = list(MIXTURE_LABELS)
    names += [m for m in _first_level("mix", summaries, selections) if m not in MIXTURE_LABELS]
    return [
        _chosen_row("Data mixture", f"mix/{m}", MIXTURE_LABELS.get(m, m), summaries, selections)
        for m in names
    ]


def _merge_rows(
    setting: str, summaries: Mapping[str, Summary], only: Sequence[str] | None = None
) -> list[Row]:
    methods = list(only) if only else _direct_children(f"merge/{setting}", summaries)
    return [
        _row("Model merging", method_label(m), f"merge/{setting}/{m}", summaries, ranked=True)
        for m in sorted(methods, key=method_order)
    ]


def _searched_rows(summaries: Mapping[str, Summary]) -> list[Row]:
    """merge/searched/<space>/<point>: the points the 3H search selected (on held-out items).
    Unranked: the best / second marks stay among the paper's merge methods."""
    pattern = re.compile(r"merge/searched/([^/]+)/([^/]+)")
    found = sorted(m.groups() for i in summaries if (m := pattern.fullmatch(i)))
    return [
        _row("Searched merge", f"Searched: {space} ({point})", f"merge/searched/{space}/{point}",
             summaries)
        for space, point in found
    ]


def static_table(summaries: Mapping[str, Summary], selections: Selections) -> Table:
    rows = [_row("Base", "Base", "base", summaries)]
    rows += _group_rows(summaries, selections)
    rows += _mixture_rows(summaries, selections)
    rows += _merge_rows("static", summaries)
    rows += _searched_rows(summaries)
    columns = table_columns(r.summary for r in rows)
    return Table("static", "Static setting (5 group models merged)", columns, rows)


def continual_table(summaries: Mapping[str, Summary]) -> Table:
    stages = list(CONTINUAL_STAGES)
    stages += [s for s in _direct_children("continual", summaries) if s not in CONTINUAL_STAGES]
    rows = [_row("Base", "Base", "base", summaries)]
    rows += [
        _row("Continual", CONTINUAL_STAGES.get(s, s), f"continual/{s}", summaries) for s in stages
    ]
    rows += _merge_rows("continual", summaries)
    columns = table_columns(r.summary for r in rows)
    return Table("continual", "Continual setting (3 stage-data models merged)", columns, rows)


def _comparable(rows: Sequence[Row], column: str) -> list[Row]:
    """Rows whose `column` value was computed over the same benchmarks (like with like)."""
    present = [r for r in rows if r.value(column) is not None]
    if column not in AVERAGES:
        return present
    full = set(GROUPS.get(column, [b for members in GROUPS.values() for b in members]))
    complete = [r for r in present if set(r.summary.basis[column]) == full]  # type: ignore[union-attr]
    if complete:
        return complete
    bases = {r.summary.basis[column] for r in present}  # type: ignore[union-attr]
    return present if len(bases) == 1 else []


def best_mixture(mixtures: Sequence[Row]) -> Row | None:
    """Highest AVG; a complete AVG beats any partial one (they are not comparable)."""
    pool = _comparable(mixtures, AVG)
    if not pool:
        pool = [r for r in mixtures if r.value(AVG) is not None]
    return max(pool, key=lambda r: r.value(AVG), default=None)  # type: ignore[arg-type,return-value]


def ablation_table(summaries: Mapping[str, Summary], selections: Selections) -> Table:
    rows = [_row("Base", "Base", "base", summaries)]
    best = best_mixture(_mixture_rows(summaries, selections))
    if best is None:
        rows.append(Row("Data mixture", "Best mixture", None, None, note="no mixture scores"))
    else:
        best.label = f"Best mixture: {best.label}"
        rows.append(best)
    rows += _merge_rows("static", summaries, only=ABLATION_METHODS)
    return Table("ablation", "R-TSVM ablation (static setting)", AVERAGES, rows)


def mark_best(table: Table) -> None:
    """Bold the best and underline the second-best value of each column among merge rows.

    With intervals (table.stats), a mark goes to the top value of the remaining rows and to
    every row whose paired difference to it is not significant at report.alpha: tied cells share
    the mark, and `table.ties` says where. Without them, equal values share it.
    """
    ranked = [(i, r) for i, r in enumerate(table.rows) if r.ranked]
    for column in table.columns:
        pool = _comparable([r for _, r in ranked], column)
        if len(pool) < 2:
            continue
        remaining = sorted(pool, key=lambda r: r.value(column), reverse=True)  # type: ignore[arg-type, return-value]
        for mark in ("best", "second"):
            if not remaining:
                break
            top = remaining[0]
            tied = [r for r in remaining if r is top or _tied(table, column, top, r)]
            if any(r.value(column) != top.value(column) for r in tied):
                table.ties.setdefault(mark, set()).add(column)
            for i, r in ranked:
                if r in tied:
                    table.marks[(i, column)] = mark
            remaining = [r for r in remaining if r not in tied]


def _tied(table: Table, column: str, top: Row, other: Row) -> bool:
    """Equal printed values, or a difference the paired bootstrap does not call significant."""
    if other.value(column) == top.value(column):
        return True
    if table.stats is None or top.model_id is None or other.model_id is None:
        return False
    delta = float(top.value(column) - other.value(column))  # type: ignore[operator]
    return table.stats.differs(column, top.model_id, other.model_id, delta) is False


def build_tables(
    scores: Mapping[str, Mapping[str, float]],
    selections: Selections,
    records: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    stats: Bootstrap | None = None,
) -> list[Table]:
    """The three tables; `records` (the whole score records) add the unparsed-reply marks and
    the OR-Bench toxic-set note; `stats` the intervals and the significance-aware marks."""
    records = records or {}
    summaries = summarize_all(scores, unparsed_of(records))
    tables = [
        static_table(summaries, selections),
        continual_table(summaries),
        ablation_table(summaries, selections),
    ]
    for table in tables:
        table.stats = stats
        mark_best(table)
        table.notes = notes_for(table, records, selections)
    return tables


def default_selection_dir(scores_dir: Path) -> Path | None:
    candidate = scores_dir.parent / "selection"
    return candidate if candidate.is_dir() else None


def write_tables(
    scores_dir: Path,
    out_dir: Path,
    selection_dir: Path | None = None,
    formats: Sequence[str] = FORMATS,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> list[Path]:
    """Write <out_dir>/{static,continual,ablation,comparisons}.{md,csv,tex,html} and
    intervals.csv (every score's interval); return the paths. Intervals and paired tests come
    from the samples files beside the scores."""
    from mixmerge.report import comparisons

    if not scores_dir.is_dir():
        raise FileNotFoundError(f"scores directory not found: {scores_dir}")
    selections = Selections.load(selection_dir or default_selection_dir(scores_dir))
    paths = []
    records = load_records(scores_dir)
    stats = load_bootstrap(scores_dir, records, bootstrap=bootstrap, alpha=alpha, seed=seed)
    scores = scores_of(records)
    tables = build_tables(scores, selections, records, stats)
    static = next(t for t in tables if t.name == "static")
    compared = comparisons.comparisons_table(static, stats, summarize_all(scores))
    rendered = [(t, RENDERERS) for t in tables]
    rendered.append((compared, comparisons.RENDERERS))
    with atomic_file(out_dir / "intervals.csv") as handle:  # every score file's interval
        handle.write(intervals_csv(records, stats))
    paths.append(out_dir / "intervals.csv")
    for table, renderers in rendered:
        for fmt in formats:
            path = out_dir / f"{table.name}.{fmt}"
            with atomic_file(path) as handle:
                handle.write(renderers[fmt](table))  # type: ignore[operator]
            paths.append(path)
    return paths


__all__ = [
    "COLUMNS",  # the report's benchmark columns, as the config schema's enum must list them
    "FORMATS",
    "TABLES",
    "Row",
    "Table",
    "best_mixture",
    "build_tables",
    "default_selection_dir",
    "mark_best",
    "write_tables",
]
