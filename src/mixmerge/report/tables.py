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
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from mixmerge.io import atomic_file
from mixmerge.report.scores import (
    ALL_COLUMNS,
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
    unparsed_of,
)
from mixmerge.report.stats import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    Interval,
    intervals_csv,
    load_bootstrap,
)

MISSING = "n/a"
TABLES = ("static", "continual", "ablation", "comparisons")
FORMATS = ("md", "csv", "tex", "html")

GROUP_LABELS: dict[str, str] = {
    "helpfulness": "Helpfulness",
    "honesty": "Honesty",
    "harmlessness": "Harmlessness",
    "helpful_honest": "Helpful&Honest",
    "helpful_harmless": "Helpful&Harmless",
}
MIXTURE_LABELS: dict[str, str] = {"heuristic": "Heuristic", "armorm": "ArmoRM", "hummer": "Hummer"}
# The paper's row order; methods not listed here follow, alphabetically.
METHOD_LABELS: dict[str, str] = {
    "weight_average": "Weight Average",
    "rewarded_soup": "Rewarded Soup",
    "task_arithmetic": "Task Arithmetic",
    "ties": "TIES",
    "dare_linear": "DARE",
    "dare_ties": "DARE-TIES",
    "della_linear": "DELLA",
    "della": "DELLA-TIES",
    "breadcrumbs": "Breadcrumbs",
    "breadcrumbs_ties": "Breadcrumbs-TIES",
    "model_stock": "Model Stock",
    "tsvm": "TSVM",
    "r_tsvm_wo_outlier": "R-TSVM w/o outlier weighting",
    "r_tsvm_wo_rank": "R-TSVM w/o rank selection",
    "r_tsvm": "R-TSVM",
}
ABLATION_METHODS = ("tsvm", "r_tsvm_wo_outlier", "r_tsvm_wo_rank", "r_tsvm")
CONTINUAL_STAGES: dict[str, str] = {
    "stage1": "Stage 1 (Helpful&Honest)",
    "stage2": "Stage 2 (+Helpful&Harmless)",
    "stage3": "Stage 3 (+Helpful)",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_order(method: str) -> tuple[int, str]:
    order = list(METHOD_LABELS)
    return (order.index(method), "") if method in order else (len(order), method)


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


def static_table(summaries: Mapping[str, Summary], selections: Selections) -> Table:
    rows = [_row("Base", "Base", "base", summaries)]
    rows += _group_rows(summaries, selections)
    rows += _mixture_rows(summaries, selections)
    rows += _merge_rows("static", summaries)
    return Table("static", "Static setting (5 group models merged)", ALL_COLUMNS, rows)


def continual_table(summaries: Mapping[str, Summary]) -> Table:
    stages = list(CONTINUAL_STAGES)
    stages += [s for s in _direct_children("continual", summaries) if s not in CONTINUAL_STAGES]
    rows = [_row("Base", "Base", "base", summaries)]
    rows += [
        _row("Continual", CONTINUAL_STAGES.get(s, s), f"continual/{s}", summaries) for s in stages
    ]
    rows += _merge_rows("continual", summaries)
    return Table("continual", "Continual setting (3 stage-data models merged)", ALL_COLUMNS, rows)


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


def _best_mixture(mixtures: Sequence[Row]) -> Row | None:
    """Highest AVG; a complete AVG beats any partial one (they are not comparable)."""
    pool = _comparable(mixtures, AVG)
    if not pool:
        pool = [r for r in mixtures if r.value(AVG) is not None]
    return max(pool, key=lambda r: r.value(AVG), default=None)  # type: ignore[arg-type,return-value]


def ablation_table(summaries: Mapping[str, Summary], selections: Selections) -> Table:
    rows = [_row("Base", "Base", "base", summaries)]
    best = _best_mixture(_mixture_rows(summaries, selections))
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


def _unparsed_note(table: Table) -> str | None:
    cells = [
        f"{row.label} {column} {row.unparsed(column)}"
        for row in table.rows
        for column in table.columns
        if row.unparsed(column)
    ]
    if not cells:
        return None
    return (
        "† = scored over the parsed judge verdicts only; unparsable judge replies left out "
        "(within evaluate.max_unparsed_fraction): " + "; ".join(cells) + "."
    )


def _or_bench_note(
    table: Table, records: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> str | None:
    """OR-Bench's column is the acceptance rate on hard-1k; its toxic-set rejection rate (the
    other half of the over-refusal trade-off, in no average) is listed beside it."""
    rates = []
    for row in table.rows:
        record = records.get(row.model_id or "", {}).get("or_bench") or {}
        rate = record.get("toxic_rejection_rate")
        if rate is not None:
            rates.append(f"{row.label} {rate:.2f}")
    if not rates:
        return None
    return (
        "OR-Bench = acceptance rate on or-bench-hard-1k (% direct_answer; higher = less "
        "over-refusal). Rejection rate on or-bench-toxic (% refused; higher = safer; in no "
        "average): " + "; ".join(rates) + "."
    )


def _grid(values: Iterable[Any]) -> str:
    found = sorted({v for v in values if v is not None})
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in found) + "}"


def fairness_note(table: Table, selections: Selections) -> str | None:
    """Per group model and data mixture: the pairs its selected model was trained on, the sweep
    it was picked from and the hyperparameters picked (from the selection files)."""
    parts = []
    for row in table.rows:
        if row.section not in ("Group model", "Data mixture") or row.model_id is None:
            continue
        chosen_by = next((k for k, v in selections.chosen.items() if v == row.model_id), None)
        trained = selections.trained.get(chosen_by or "")
        if not trained or row.model_id not in trained:
            continue
        picked = trained[row.model_id]
        grid = (
            f"{len(trained)} candidates (beta {_grid(t.get('beta') for t in trained.values())}"
            f" x lr {_grid(t.get('learning_rate') for t in trained.values())}"
        )
        if chosen_by == "mix/heuristic":
            grid += f", {len({m.split('/')[2] for m in trained})} ratios"
        pairs = picked.get("pairs")
        mix = picked.get("mix") or {}
        caps = [
            f"{what} capped at {mix[key]:,} (mixtures.{mix.get('strategy')}.{key})"
            for key, what in (("budget", "budget"), ("pool_size", "candidate pool"))
            if mix.get(key)
        ]
        if caps:
            grid += f"; {', '.join(caps)} of {mix.get('pool_pairs') or 0:,} pool pairs"
        parts.append(
            f"{row.label}: {pairs:,} pairs, {grid}), picked beta {picked.get('beta'):g}, "
            f"lr {picked.get('learning_rate'):g}"
            if isinstance(pairs, int)
            else f"{row.label}: {grid})"
        )
    if not parts:
        return None
    return "Training (pairs of the selected model, its sweep, the pick): " + "; ".join(parts) + "."


def _notes(
    table: Table,
    records: Mapping[str, Mapping[str, Mapping[str, Any]]],
    selections: Selections,
) -> list[str]:
    notes = [
        f"{MISSING} = not available; * = average over the benchmarks present only (partial).",
        "Scores in percent, MT-Bench on its 1-10 scale. Helpful Avg = mean of the 8 helpful "
        "numbers (MT-Bench raw); Honest Avg = HaluEval_Wild; Harmless Avg = mean of Salad_Bench "
        "and OR-Bench; AVG = mean of the three rounded group averages (half-up, 2 decimals).",
        "Bold / underline: best / second-best among the merging methods (partial averages are "
        "only compared with averages over the same benchmarks).",
    ]
    if table.stats is not None:
        notes.append(
            f"± = half-width of the {100 * (1 - table.stats.alpha):g}% bootstrap interval "
            f"({table.stats.bootstrap} resamples of the items; averages recomputed with the "
            "paper's rounding on each resample); n/a where a score has no samples file."
        )
    for mark, columns in sorted(table.ties.items()):
        notes.append(
            f"Shared {mark} marks (the paired bootstrap difference to the top of the mark is not "
            f"significant at alpha={table.stats.alpha if table.stats else 0:g}): "
            + ", ".join(c for c in table.columns if c in columns)
            + "."
        )
    chosen = [r for r in table.rows if r.section in ("Group model", "Data mixture") and r.note]
    if chosen:
        notes.append(
            "Models: "
            + "; ".join(f"{r.label} = {r.model_id or MISSING} ({r.note})" for r in chosen)
            + "."
        )
    extra = (
        _unparsed_note(table),
        _or_bench_note(table, records),
        fairness_note(table, selections),
    )
    notes += [n for n in extra if n]
    return notes


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
        table.notes = _notes(table, records, selections)
    return tables


# --- rendering ---------------------------------------------------------------------------------


def _cell(table: Table, i: int, column: str, style: str) -> str:
    row = table.rows[i]
    value = row.value(column)
    if value is None:
        return MISSING
    text = f"{value:.2f}"
    star = row.partial(column)
    dagger = row.unparsed(column) > 0
    mark = table.marks.get((i, column))
    interval = table.interval(i, column)
    if style == "md":
        text += ("*" if star else "") + ("†" if dagger else "")
        text = {"best": f"**{text}**", "second": f"<ins>{text}</ins>"}.get(mark or "", text)
        return text + (f" ±{interval.half_width:.2f}" if interval else "")
    if style == "tex":
        text = {"best": f"\\textbf{{{text}}}", "second": f"\\underline{{{text}}}"}.get(
            mark or "", text
        )
        return text + ("$^{*}$" if star else "") + ("$^{\\dagger}$" if dagger else "")
    text += ("<sup>*</sup>" if star else "") + ("<sup>†</sup>" if dagger else "")
    text = {"best": f"<b>{text}</b>", "second": f"<u>{text}</u>"}.get(mark or "", text)
    if interval is None:
        return text
    hover = f"95% CI [{interval.low:.2f}, {interval.high:.2f}], se {interval.se:.2f}"
    if table.stats is not None:
        hover = hover.replace("95%", f"{100 * (1 - table.stats.alpha):g}%")
    return f'<span title="{hover}">{text}<small> ±{interval.half_width:.2f}</small></span>'


def to_markdown(table: Table) -> str:
    headers = ["", "Model", *table.columns]
    lines = [
        f"# {table.title}",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * len(table.columns)) + "|",
    ]
    previous = None
    for i, row in enumerate(table.rows):
        section = row.section if row.section != previous else ""
        previous = row.section
        cells = [section, row.label] + [_cell(table, i, c, "md") for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *[f"{n}  " for n in table.notes]]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(table: Table) -> str:
    """Machine-readable: empty cell = n/a; `partial`, `best`, `second` list column titles;
    `unparsed` lists title=count of the scores that left unparsable judge replies out."""
    headers = ["section", "label", "model", *table.columns, "partial", "best", "second"]
    headers.append("unparsed")
    # the interval bounds go after the existing columns, so readers by position keep working
    headers += [f"{c} {end}" for c in table.columns for end in ("low", "high")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for i, row in enumerate(table.rows):
        values = [row.section, row.label, row.model_id or ""]
        values += ["" if row.value(c) is None else f"{row.value(c):.2f}" for c in table.columns]
        bounds = []
        for c in table.columns:
            interval = table.interval(i, c)
            bounds += ["", ""] if interval is None else [f"{interval.low:.2f}", f"{interval.high:.2f}"]
        values.append(";".join(c for c in table.columns if row.partial(c)))
        for kind in ("best", "second"):
            values.append(";".join(c for c in table.columns if table.marks.get((i, c)) == kind))
        values.append(";".join(f"{c}={row.unparsed(c)}" for c in table.columns if row.unparsed(c)))
        writer.writerow(values + bounds)
    return buffer.getvalue()


_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs,graphicx})."""
    spec = "ll" + "r" * len(table.columns)
    lines = [
        f"% {table.title}; generated by mixmerge report. Needs \\usepackage{{booktabs,graphicx}}.",
        "\\begin{table*}[t]",
        "\\centering",
        "\\resizebox{\\linewidth}{!}{%",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & Model & " + " & ".join(_tex(c) for c in table.columns) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for i, row in enumerate(table.rows):
        if previous is not None and row.section != previous:
            lines.append("\\midrule")
        section = _tex(row.section) if row.section != previous else ""
        previous = row.section
        cells = [section, _tex(row.label)] + [_cell(table, i, c, "tex") for c in table.columns]
        lines.append(" & ".join(cells) + " \\\\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}}",
        f"\\caption{{{_tex(table.title)}. {_tex(table.notes[0]) if table.notes else ''}}}",
        f"\\label{{tab:{table.name}}}",
        "\\end{table*}",
    ]
    return "\n".join(lines) + "\n"


_HTML_STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
    "th,td{border-bottom:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}tr.sec td{border-top:2px solid #888}"
    "p{font-size:12px;color:#444;max-width:70em}"
)


def to_html(table: Table) -> str:
    """A self-contained page (the Snakemake report shows it in a frame)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = []
    previous = None
    for i, row in enumerate(table.rows):
        cls = ' class="sec"' if previous is not None and row.section != previous else ""
        section = esc(row.section) if row.section != previous else ""
        previous = row.section
        title = f' title="{esc(row.model_id)}"' if row.model_id else ""
        cells = "".join(f"<td>{_cell(table, i, c, 'html')}</td>" for c in table.columns)
        body.append(
            f'<tr{cls}><td class="l">{section}</td><td class="l"{title}>{esc(row.label)}</td>'
            f"{cells}</tr>"
        )
    notes = "".join(f"<p>{esc(n)}</p>" for n in table.notes)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(table.title)}</title>'
        f"<style>{_HTML_STYLE}</style></head><body>\n<h2>{esc(table.title)}</h2>\n"
        f'<table><thead><tr><th class="l"></th><th class="l">Model</th>{head}</tr></thead>\n'
        f"<tbody>\n" + "\n".join(body) + f"\n</tbody></table>\n{notes}\n</body></html>\n"
    )


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex, "html": to_html}


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
    "COLUMNS",
    "GROUPS",
    "MISSING",
    "Table",
    "Row",
    "build_tables",
    "write_tables",
    "to_markdown",
    "to_csv",
    "to_latex",
    "to_html",
]
