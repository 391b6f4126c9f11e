"""The 3H tables: the paper's averages and rounding, n/a and partial flags, best/second marks,
row layouts of the static / continual / ablation tables, and the four output formats."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from report_helpers import BENCHMARKS, GROUPS, write_scores

from mixmerge.io import write_json
from mixmerge.report.scores import Selections, load_scores, resolve, round2, summarize
from mixmerge.report.tables import build_tables, write_tables

AVERAGES = ("Helpful Avg", "Honest Avg", "Harmless Avg", "AVG")
# Two rows of the paper's Table 3 (Llama-3-8B-Instruct): 11 numbers -> the paper's 4 averages.
PAPER_ROWS = {
    "llama3": (
        "28.08 78.09 93.65 82.03 68.20 58.99 53.05 8.25 53.50 91.16 26.97",
        "58.79 53.50 59.07 57.12",
    ),
    "tsvm": (
        "29.92 77.63 93.12 82.17 68.51 59.26 55.49 8.29 56.20 89.43 67.76",
        "59.30 56.20 78.60 64.70",  # Harmless 78.595 -> 78.60: half-up, decimal
    ),
}


@pytest.mark.parametrize("name", list(PAPER_ROWS))
def test_paper_rows(name: str) -> None:
    numbers, expected = PAPER_ROWS[name]
    summary = summarize(dict(zip(BENCHMARKS, map(float, numbers.split()), strict=True)))
    assert [f"{summary.get(a):.2f}" for a in AVERAGES] == expected.split()
    assert summary.partial == []


def test_round_half_up_is_decimal() -> None:
    assert round(78.595, 2) == 78.59  # binary float: why the paper's rounding needs Decimal
    assert round2(78.595) == Decimal("78.60")
    assert round2(2.675) == Decimal("2.68")
    assert round2(59.065) == Decimal("59.07")


def test_avg_is_mean_of_rounded_group_averages() -> None:
    # Helpful 80.04/8 = 10.005 -> 10.01; Harmless 20.01/2 = 10.005 -> 10.01; Honest 10.00.
    # AVG of the rounded averages: 30.02/3 = 10.0067 -> 10.01 (unrounded: 10.0033 -> 10.00).
    scores = {b: 10.0 for b in BENCHMARKS}
    scores["math"] = 10.04
    scores["salad_bench"] = 10.01
    summary = summarize(scores)
    assert summary.get("Helpful Avg") == Decimal("10.01")
    assert summary.get("Harmless Avg") == Decimal("10.01")
    assert summary.get("AVG") == Decimal("10.01")


def test_partial_and_missing() -> None:
    summary = summarize({"gsm8k": 20, "arc_challenge": 40, "or_bench": 50})
    assert summary.get("MMLU") is None
    assert summary.get("Helpful Avg") == Decimal("30.00")
    assert summary.get("Honest Avg") is None
    assert summary.get("Harmless Avg") == Decimal("50.00")
    assert summary.partial == ["Helpful Avg", "Honest Avg", "Harmless Avg", "AVG"]
    assert summary.get("AVG") == Decimal("40.00")  # over the present groups, flagged partial


def test_static_layout_and_formats(run_dir: Path, tmp_path: Path) -> None:
    paths = write_tables(run_dir / "scores", tmp_path / "tables")  # selection: ../selection
    assert sorted(p.name for p in paths) == sorted(
        [
            f"{t}.{e}"
            for t in ("static", "continual", "ablation", "comparisons")
            for e in ("md", "csv", "tex", "html")
        ]
        + ["intervals.csv"]
    )
    rows = list(csv.DictReader((tmp_path / "tables/static.csv").open()))
    assert [r["model"] for r in rows] == [
        "base",
        *[f"dpo/{g}/b0.1-lr5e-07" for g in GROUPS],
        "mix/heuristic/0.1",
        "mix/armorm",
        "mix/hummer",
        *[f"merge/static/{m}" for m in ("ties", "dare_ties", "tsvm", "r_tsvm_wo_rank", "r_tsvm")],
    ]
    assert rows[1]["label"] == "Helpfulness" and rows[6]["label"] == "Heuristic (0.1)"
    assert rows[9]["label"] == "TIES" and rows[12]["label"] == "R-TSVM w/o rank selection"
    # best and second among the merge rows, per column, and never elsewhere
    merges = rows[9:]
    for column in ("Math", "OR-Bench", "AVG"):
        values = sorted((float(r[column]) for r in merges), reverse=True)
        best = [r for r in merges if column in r["best"].split(";")]
        second = [r for r in merges if column in r["second"].split(";")]
        assert [float(r[column]) for r in best] == [values[0]]
        assert [float(r[column]) for r in second] == [values[1]]
    assert all(r["best"] == r["second"] == "" for r in rows[:9])
    md = (tmp_path / "tables/static.md").read_text()
    assert md.count("**") == 2 * 15 and md.count("<ins>") == 15  # one best, one second per column
    tex = (tmp_path / "tables/static.tex").read_text()
    assert r"\textbf{" in tex and r"\underline{" in tex and r"Helpful\&Honest" in tex
    assert r"MBPP\_Plus" in tex and "\\midrule" in tex
    assert "<b>" in (tmp_path / "tables/static.html").read_text()


def test_continual_and_ablation_rows(run_dir: Path) -> None:
    static, continual, ablation = build_tables(
        load_scores(run_dir / "scores"), Selections.load(run_dir / "selection")
    )
    assert [r.model_id for r in continual.rows] == [
        "base",
        "continual/stage1",
        "continual/stage2",
        "continual/stage3",
        *[
            f"merge/continual/{m}"
            for m in ("ties", "dare_ties", "tsvm", "r_tsvm_wo_rank", "r_tsvm")
        ],
    ]
    assert ablation.columns == AVERAGES
    labels = [r.label for r in ablation.rows]
    assert labels[0] == "Base" and labels[1].startswith("Best mixture: ")
    assert labels[2:] == [
        "TSVM",
        "R-TSVM w/o outlier weighting",
        "R-TSVM w/o rank selection",
        "R-TSVM",
    ]
    mixtures = [r for r in static.rows if r.section == "Data mixture"]
    best = max(mixtures, key=lambda r: r.value("AVG"))
    assert ablation.rows[1].model_id == best.model_id
    assert ablation.rows[3].summary is None  # w/o outlier weighting not run: a row of n/a
    md_row = next(line for line in _md(ablation) if "w/o outlier" in line)
    assert md_row.count("n/a") == 4


def _md(table) -> list[str]:
    from mixmerge.report.table_render import to_markdown

    return to_markdown(table).splitlines()


def test_partial_values_are_flagged_and_not_ranked_against_complete(tmp_path: Path) -> None:
    full = {b: 50.0 for b in BENCHMARKS}
    write_scores(tmp_path, "merge/static/ties", full)
    write_scores(tmp_path, "merge/static/tsvm", {**full, "mmlu": 40.0})
    # missing MMLU: a higher (partial) Helpful Avg that must not win against complete ones
    write_scores(tmp_path, "merge/static/r_tsvm", {b: 90.0 for b in BENCHMARKS if b != "mmlu"})
    static = build_tables(load_scores(tmp_path), Selections())[0]
    rows = {r.model_id: i for i, r in enumerate(static.rows)}
    assert static.marks[(rows["merge/static/ties"], "Helpful Avg")] == "best"
    assert static.marks[(rows["merge/static/tsvm"], "Helpful Avg")] == "second"
    assert (rows["merge/static/r_tsvm"], "Helpful Avg") not in static.marks
    assert static.marks[(rows["merge/static/r_tsvm"], "Honest Avg")] == "best"  # complete there
    text = "\n".join(_md(static))
    r_tsvm = next(line for line in text.splitlines() if "| R-TSVM |" in line)
    assert "n/a" in r_tsvm and "90.00*" in r_tsvm  # Helpful Avg over 7 of 8, flagged
    assert "| Base | n/a |" in text  # fixed rows are there even without scores


def test_selection_resolution(tmp_path: Path) -> None:
    scores = tmp_path / "scores"
    write_scores(scores, "dpo/honesty/a", {"gsm8k": 1})
    write_scores(scores, "dpo/honesty/b", {"gsm8k": 2})
    write_scores(scores, "dpo/helpfulness/a", {"gsm8k": 3})
    write_scores(scores, "dpo/harmlessness", {"gsm8k": 4})  # flat layout: the group itself
    ids = load_scores(scores)
    none = Selections()
    assert resolve("dpo/helpfulness", none, ids) == ("dpo/helpfulness/a", "sole candidate")
    assert resolve("dpo/harmlessness", none, ids)[0] == "dpo/harmlessness"
    assert resolve("dpo/honesty", none, ids) == (None, "2 candidates and no selection file")
    write_json(tmp_path / "selection/dpo/honesty.json", {"selected": "dpo/honesty/b"})
    chosen = Selections.load(tmp_path / "selection")
    assert resolve("dpo/honesty", chosen, ids) == ("dpo/honesty/b", "selected")
    # the default selection directory is <scores>/../selection
    write_tables(scores, tmp_path / "t")
    rows = list(csv.DictReader((tmp_path / "t/static.csv").open()))
    honesty = next(r for r in rows if r["label"] == "Honesty")
    assert honesty["model"] == "dpo/honesty/b" and honesty["GSM8K"] == "2.00"
    assert next(r for r in rows if r["label"] == "Helpful&Honest")["GSM8K"] == ""


def test_stray_files_and_missing_dir(tmp_path: Path) -> None:
    write_scores(tmp_path, "base", {"gsm8k": 10})
    write_json(tmp_path / "base" / "meta.json", {"note": "not a score"})
    (tmp_path / "base" / "gsm8k.samples.jsonl").write_text("{}\n")
    assert load_scores(tmp_path) == {"base": {"gsm8k": 10.0}}
    with pytest.raises(FileNotFoundError, match="scores directory not found"):
        write_tables(tmp_path / "nope", tmp_path / "t")


def test_or_bench_toxic_rejection_rate_in_the_notes(tmp_path: Path) -> None:
    """The column is hard-1k acceptance; the toxic-set rejection rate is listed in the notes."""
    write_scores(tmp_path, "base", {"gsm8k": 10})
    write_json(
        tmp_path / "base" / "or_bench.json",
        {
            "benchmark": "or_bench",
            "score": 81.25,
            "n": 16,
            "metric": "acceptance_rate",
            "hard_acceptance_rate": 81.25,
            "toxic_rejection_rate": 93.5,
            "toxic": {"n": 8, "rejection_rate": 93.5, "n_parsed": 8, "n_unparsed": 0},
            "n_parsed": 16,
            "n_unparsed": 0,
        },
    )
    write_tables(tmp_path, tmp_path / "t", formats=("md", "html"))
    text = (tmp_path / "t/static.md").read_text()
    assert "| 81.25 |" in next(line for line in text.splitlines() if line.startswith("| Base |"))
    assert "Rejection rate on or-bench-toxic" in text and "Base 93.50" in text
    assert "†" not in text  # nothing was left out
    assert "Base 93.50" in (tmp_path / "t/static.html").read_text()


def test_selection_records_training_and_the_fairness_note(tmp_path: Path) -> None:
    """`mixmerge select --models` records what every candidate was trained with (and a mixture's
    caps); the tables' notes list pairs, sweep and pick per group model and mixture."""
    from mixmerge.selection import select_best

    scores, models = tmp_path / "scores", tmp_path / "models"
    mix_data = tmp_path / "data" / "mix" / "armorm.jsonl"
    write_json(
        mix_data.with_suffix(".mix.json"),
        {"strategy": "armorm", "parameters": {"budget": 20000, "mode": "on_policy"},
         "pool": {"pairs": 410000}},
    )
    runs = {
        "dpo/honesty": [("b0.1-lr5e-07", 0.1, 5e-7, 40.0), ("b0.5-lr5e-07", 0.5, 5e-7, 45.0)],
        "mix/armorm": [("b0.1-lr5e-07", 0.1, 5e-7, 52.0), ("b0.5-lr5e-07", 0.5, 5e-7, 50.0)],
    }
    for prefix, candidates in runs.items():
        ids = []
        for name, beta, lr, score in candidates:
            model_id = f"{prefix}/{name}"
            ids.append(model_id)
            write_scores(scores, model_id, {b: score for b in BENCHMARKS})
            data = [str(mix_data)] if prefix.startswith("mix/") else ["data/truthy_dpo.jsonl"]
            write_json(
                models / model_id / "mixmerge_train.json",
                {"pairs": 1016 if prefix == "dpo/honesty" else 19877, "data": data,
                 "hyperparameters": {"beta": beta, "learning_rate": lr}},
            )
        record = select_best(scores, ids, "AVG", tmp_path / "selection" / f"{prefix}.json", models)
        assert set(record["trained"]) == set(ids)
    assert record["trained"]["mix/armorm/b0.1-lr5e-07"]["mix"]["budget"] == 20000
    static = build_tables(load_scores(scores), Selections.load(tmp_path / "selection"))[0]
    note = next(n for n in static.notes if n.startswith("Training"))
    assert "Honesty: 1,016 pairs, 2 candidates (beta {0.1, 0.5} x lr {5e-07}), picked beta 0.5" in note
    assert "ArmoRM: 19,877 pairs, 2 candidates (beta {0.1, 0.5} x lr {5e-07}; budget capped at" in note
    assert "20,000 (mixtures.armorm.budget) of 410,000 pool pairs), picked beta 0.1" in note
