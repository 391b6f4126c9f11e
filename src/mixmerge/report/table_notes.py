"""The notes under a report table: what n/a, *, † and the marks mean, the bootstrap behind the
intervals, which model each selected row is, the unparsed judge replies, OR-Bench's toxic-set
rejection rate and what each selected model was trained on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mixmerge.report.labels import MISSING
from mixmerge.report.scores import Selections
from mixmerge.report.table_model import Table


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


def notes_for(
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
