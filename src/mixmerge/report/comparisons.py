"""The paper's question, answered per merge method: merge vs the best data mixture (and vs the
base model), as a paired difference with its bootstrap interval and p-value.

`tables/comparisons.{md,csv,tex,html}`. Rows: the static setting's merging methods. For each
reference (the best data-mixture baseline by AVG, then the base model) and each of AVG and the
three group averages: delta = merge - reference on the printed numbers, the percentile interval
of the paired bootstrap differences and the two-sided p (`mixmerge.report.stats`). A cell is n/a
where either model has no samples for that average. The CSV is long: one line per method,
reference and column.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from mixmerge.report.figures import sweep_points
from mixmerge.report.labels import MISSING, method_label
from mixmerge.report.scores import AVG, GROUPS, Summary
from mixmerge.report.stats import Bootstrap, Comparison
from mixmerge.report.table_model import Row, Table
from mixmerge.report.table_render import HTML_STYLE, tex_escape
from mixmerge.report.tables import best_mixture

COLUMNS = (AVG, *GROUPS)


@dataclass
class ComparisonTable:
    name: str
    title: str
    references: list[tuple[str, Row]]  # (heading, reference row)
    rows: list[Row]  # the merge methods
    cells: dict[tuple[str, str, str], Comparison | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seeds: list[SeedSpread] = field(default_factory=list)

    def cell(self, method: Row, reference: str, column: str) -> Comparison | None:
        return self.cells.get((method.label, reference, column))


@dataclass(frozen=True)
class SeedSpread:
    """AVG of one method's seed sweep (paper Fig. 3): mean ± sd, and how many seeds beat the base."""

    method: str
    values: tuple[float, ...]
    base: float | None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def beats_base(self) -> int | None:
        return None if self.base is None else sum(v > self.base for v in self.values)

    def text(self) -> str:
        n = len(self.values)
        beats = "" if self.beats_base is None else f"; beats the base in {self.beats_base} of {n} seeds"
        return f"{self.mean:.2f} ± {self.sd:.2f} (n={n}{beats})"


def seed_spreads(summaries: Mapping[str, Summary]) -> list[SeedSpread]:
    base = summaries.get("base")
    base_avg = None if base is None or base.get(AVG) is None else float(base.get(AVG))  # type: ignore[arg-type]
    return [
        SeedSpread(method_label(method), tuple(v for _, v in points), base_avg)
        for method, points in sweep_points(summaries, "seed").items()
    ]


def comparisons_table(
    static: Table, stats: Bootstrap | None, summaries: Mapping[str, Summary] | None = None
) -> ComparisonTable:
    mixtures = [r for r in static.rows if r.section == "Data mixture"]
    references: list[tuple[str, Row]] = []
    best = best_mixture(mixtures)
    if best is not None:
        references.append((f"vs best mixture ({best.label})", best))
    base = next((r for r in static.rows if r.section == "Base" and r.summary), None)
    if base is not None:
        references.append(("vs base", base))
    merges = [r for r in static.rows if r.section == "Model merging"]
    table = ComparisonTable(
        "comparisons", "Merge vs mix: paired differences (static setting)", references, merges
    )
    for method in merges:
        for heading, ref in references:
            for column in COLUMNS:
                table.cells[(method.label, heading, column)] = _compare(stats, method, ref, column)
    level = f"{100 * (1 - stats.alpha):g}%" if stats else "95%"
    table.notes = [
        f"delta = merge - reference on the printed averages; [{level} paired bootstrap "
        "interval]; p two-sided (normal, bootstrap standard error). The same resampled items for "
        f"every model; {MISSING} where a model has no samples for that average.",
    ]
    if stats is None or not stats.replicates:
        table.notes.append("No samples files were found: no intervals or p-values.")
    table.seeds = seed_spreads(summaries or {})
    if table.seeds:
        table.notes.append(
            "Seed robustness: AVG of each seed-swept method over its seeds (merge/sweep/<method>/"
            "seed<N>), mean ± sample sd, and in how many seeds it beats the base model's AVG."
        )
    return table


def _seed_lines(table: ComparisonTable) -> list[list[str]]:
    return [[s.method, s.text()] for s in table.seeds]


def _compare(stats: Bootstrap | None, a: Row, b: Row, column: str) -> Comparison | None:
    if stats is None or a.model_id is None or b.model_id is None:
        return None
    va, vb = a.value(column), b.value(column)
    if va is None or vb is None:
        return None
    return stats.compare(column, a.model_id, b.model_id, float(va - vb))


def _text(found: Comparison | None) -> str:
    if found is None:
        return MISSING
    low, high = found.interval.low, found.interval.high
    return f"{found.delta:+.2f} [{low:+.2f}, {high:+.2f}], p={_p(found.p)}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _headers(table: ComparisonTable) -> list[str]:
    return [f"{heading}: Δ{column}" for heading, _ in table.references for column in COLUMNS]


def _wide(table: ComparisonTable) -> list[list[str]]:
    return [
        [row.label]
        + [_text(table.cell(row, heading, column)) for heading, _ in table.references for column in COLUMNS]
        for row in table.rows
    ]


def to_markdown(table: ComparisonTable) -> str:
    headers = ["Method", *_headers(table)]
    lines = [f"# {table.title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
    lines += ["| " + " | ".join(cells) + " |" for cells in _wide(table)]
    if table.seeds:
        lines += ["", "## Seed robustness (AVG)", "", "| Method | AVG over seeds |", "|---|---|"]
        lines += [f"| {m} | {t} |" for m, t in _seed_lines(table)]
    lines += ["", *[f"{n}  " for n in table.notes]]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(table: ComparisonTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "model", "reference", "reference_model", "column", "delta", "low", "high", "p"])
    for row in table.rows:
        for heading, ref in table.references:
            for column in COLUMNS:
                found = table.cell(row, heading, column)
                numbers = (
                    ["", "", "", ""]
                    if found is None
                    else [
                        f"{found.delta:.2f}",
                        f"{found.interval.low:.2f}",
                        f"{found.interval.high:.2f}",
                        f"{found.p:.6g}",
                    ]
                )
                writer.writerow(
                    [row.label, row.model_id or "", heading, ref.model_id or "", column, *numbers]
                )
    for spread in table.seeds:  # the seed sweeps: mean (delta column) and sd, vs the base
        beats = "" if spread.beats_base is None else f"{spread.beats_base}/{len(spread.values)}"
        writer.writerow(
            [spread.method, "", "seeds", "base", AVG, f"{spread.mean:.2f}", f"sd={spread.sd:.2f}",
             f"beats_base={beats}", ""]
        )  # fmt: skip
    return buffer.getvalue()


def to_latex(table: ComparisonTable) -> str:
    headers = ["Method", *_headers(table)]
    lines = [
        f"% {table.title}; generated by mixmerge report tables. Needs \\usepackage{{booktabs,graphicx}}.",
        "\\begin{table*}[t]",
        "\\centering",
        "\\resizebox{\\linewidth}{!}{%",
        f"\\begin{{tabular}}{{l{'r' * (len(headers) - 1)}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in headers) + " \\\\",
        "\\midrule",
        *[" & ".join(tex_escape(c) for c in cells) + " \\\\" for cells in _wide(table)],
        *(["\\midrule"] if table.seeds else []),
        *[f"{tex_escape(m)} & \\multicolumn{{{len(headers) - 1}}}{{l}}{{seeds: {tex_escape(t)}}} \\\\" for m, t in _seed_lines(table)],
        "\\bottomrule",
        "\\end{tabular}}",
        f"\\caption{{{tex_escape(table.title)}. {tex_escape(table.notes[0])}}}",
        f"\\label{{tab:{table.name}}}",
        "\\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def to_html(table: ComparisonTable) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in _headers(table))
    body = "\n".join(
        f'<tr><td class="l">{esc(cells[0])}</td>'
        + "".join(f"<td>{esc(c)}</td>" for c in cells[1:])
        + "</tr>"
        for cells in _wide(table)
    )
    notes = "".join(f"<p>{esc(n)}</p>" for n in table.notes)
    if table.seeds:
        seeds = "".join(
            f'<tr><td class="l">{esc(m)}</td><td>{esc(t)}</td></tr>' for m, t in _seed_lines(table)
        )
        notes = (
            "<h3>Seed robustness (AVG)</h3><table><thead><tr><th>Method</th><th>AVG over seeds"
            f"</th></tr></thead><tbody>{seeds}</tbody></table>" + notes
        )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(table.title)}</title>'
        f"<style>{HTML_STYLE}</style></head><body>\n<h2>{esc(table.title)}</h2>\n"
        f'<table><thead><tr><th class="l">Method</th>{head}</tr></thead>\n<tbody>\n{body}\n'
        f"</tbody></table>\n{notes}\n</body></html>\n"
    )


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex, "html": to_html}
