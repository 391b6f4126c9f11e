"""The 3H table: paper averages, n/a for missing benchmarks, partial averages marked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mixmerge.io import write_json
from mixmerge.report.tables import build_rows, load_scores, write_tables

FULL = {
    "math": 10,
    "gsm8k": 20,
    "arc_easy": 30,
    "arc_challenge": 40,
    "mmlu": 50,
    "mbpp_plus": 60,
    "humaneval_plus": 70,
    "mt_bench": 8,
    "halueval_wild": 55,
    "salad_bench": 90,
    "or_bench": 70,
}


def _scores(root: Path, model: str, scores: dict[str, float]) -> None:
    for bench, score in scores.items():
        write_json(
            root / model / f"{bench}.json",
            {"benchmark": bench, "score": score, "n": 1, "metric": "m"},
        )


def test_full_row_reproduces_paper_averages(tmp_path: Path) -> None:
    _scores(tmp_path, "merge/static/ties", FULL)
    (row,) = build_rows(load_scores(tmp_path), "static")
    helpful = (10 + 20 + 30 + 40 + 50 + 60 + 70 + 8) / 8  # MT-Bench enters on its raw 1-10 scale
    assert row["Helpful Avg"] == pytest.approx(helpful)
    assert row["Honest Avg"] == 55
    assert row["Harmless Avg"] == pytest.approx(80)
    assert row["AVG"] == pytest.approx((helpful + 55 + 80) / 3)
    assert row["partial"] == []


def test_partial_rows_and_order(tmp_path: Path) -> None:
    _scores(tmp_path, "merge/static/linear", {"gsm8k": 10, "or_bench": 50})
    _scores(tmp_path, "dpo/honesty", {"gsm8k": 30})
    _scores(tmp_path, "base", {"gsm8k": 20, "arc_challenge": 40})
    _scores(tmp_path, "mix/heuristic", {"gsm8k": 1})  # not part of the static table
    md, csv_path = write_tables(tmp_path, tmp_path / "tables")
    text = md.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == [
        "| base",
        "| dpo/honesty",
        "| merge/static/linear",
    ]
    base = lines[1]
    assert (
        "n/a" in base and "30.00*" in base
    )  # Helpful Avg over GSM8K and ARC-C only, marked partial
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[2]["Harmless Avg"] == "50.0000" and rows[2]["Honest Avg"] == ""
    assert rows[2]["partial"] == "Helpful Avg;Honest Avg;Harmless Avg;AVG"


def test_missing_scores_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="scores directory not found"):
        write_tables(tmp_path / "nope", tmp_path / "t")
