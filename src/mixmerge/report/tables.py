"""The paper's 3H tables: one row per model, the 11 benchmark columns and the group averages."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from statistics import mean

from mixmerge.io import atomic_file

# benchmark id -> column title, in the paper's column order.
COLUMNS: dict[str, str] = {
    "math": "Math",
    "gsm8k": "GSM8K",
    "arc_easy": "ARC-E",
    "arc_challenge": "ARC-C",
    "mmlu": "MMLU",
    "mbpp_plus": "MBPP_Plus",
    "humaneval_plus": "HumanEval_Plus",
    "mt_bench": "MT-Bench",
    "halueval_wild": "HaluEval_Wild",
    "salad_bench": "Salad_Bench",
    "or_bench": "OR-Bench",
}
# Group averages exactly as the paper computes them (MT-Bench enters on its raw 1-10 scale).
GROUPS: dict[str, list[str]] = {
    "Helpful Avg": [
        "math",
        "gsm8k",
        "arc_easy",
        "arc_challenge",
        "mmlu",
        "mbpp_plus",
        "humaneval_plus",
        "mt_bench",
    ],
    "Honest Avg": ["halueval_wild"],
    "Harmless Avg": ["salad_bench", "or_bench"],
}
SETTING_PREFIXES: dict[str, tuple[str, ...]] = {"static": ("base", "dpo/", "merge/static/")}
MISSING = "n/a"


def load_scores(scores_dir: Path) -> dict[str, dict[str, float]]:
    """{model id: {benchmark: score}} from scores/<model id>/<benchmark>.json."""
    table: dict[str, dict[str, float]] = {}
    for path in sorted(scores_dir.rglob("*.json")):
        record = json.loads(path.read_text())
        model_id = path.parent.relative_to(scores_dir).as_posix()
        table.setdefault(model_id, {})[record["benchmark"]] = float(record["score"])
    return table


def _row_order(model_id: str, prefixes: tuple[str, ...]) -> tuple[int, str]:
    for rank, prefix in enumerate(prefixes):
        if model_id == prefix or model_id.startswith(prefix):
            return rank, model_id
    return len(prefixes), model_id


def build_rows(scores: dict[str, dict[str, float]], setting: str) -> list[dict[str, object]]:
    """Rows with numbers (None = not run) and, per average, whether it is partial."""
    prefixes = SETTING_PREFIXES[setting]
    models = sorted(
        (m for m in scores if _row_order(m, prefixes)[0] < len(prefixes)),
        key=lambda m: _row_order(m, prefixes),
    )
    rows = []
    for model_id in models:
        row: dict[str, object] = {"model": model_id}
        for bench, title in COLUMNS.items():
            row[title] = scores[model_id].get(bench)
        group_avgs = []
        partial: list[str] = []
        for title, members in GROUPS.items():
            present = [scores[model_id][b] for b in members if b in scores[model_id]]
            row[title] = mean(present) if present else None
            if present:
                group_avgs.append(row[title])
            if len(present) < len(members):
                partial.append(title)
        row["AVG"] = mean(group_avgs) if group_avgs else None
        if len(group_avgs) < len(GROUPS) or partial:
            partial.append("AVG")
        row["partial"] = partial
        rows.append(row)
    return rows


def _fmt(value: object, partial: bool) -> str:
    if value is None:
        return MISSING
    return f"{value:.2f}{'*' if partial else ''}"


def to_markdown(rows: list[dict[str, object]], setting: str) -> str:
    headers = ["Model", *COLUMNS.values(), *GROUPS, "AVG"]
    lines = [
        f"# {setting} setting",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    for row in rows:
        cells = [str(row["model"])]
        cells += [_fmt(row[t], False) for t in COLUMNS.values()]
        cells += [_fmt(row[t], t in row["partial"]) for t in [*GROUPS, "AVG"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{MISSING} = benchmark not run yet; * = average over the benchmarks present only "
        "(partial). Scores in percent, MT-Bench on its 1-10 scale.",
    ]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, object]]) -> str:
    headers = ["model", *COLUMNS.values(), *GROUPS, "AVG", "partial"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        values = [row["model"]]
        values += ["" if row[h] is None else f"{row[h]:.4f}" for h in headers[1:-1]]
        values.append(";".join(row["partial"]))
        writer.writerow(values)
    return buffer.getvalue()


def write_tables(scores_dir: Path, out_dir: Path, setting: str = "static") -> list[Path]:
    if not scores_dir.is_dir():
        raise FileNotFoundError(f"scores directory not found: {scores_dir}")
    rows = build_rows(load_scores(scores_dir), setting)
    paths = []
    for suffix, content in (("md", to_markdown(rows, setting)), ("csv", to_csv(rows))):
        path = out_dir / f"{setting}.{suffix}"
        with atomic_file(path) as handle:
            handle.write(content)
        paths.append(path)
    return paths
