"""Selection: the best candidate by the configured 3H criterion, ties to the first listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmerge.io import read_json, write_json
from mixmerge.selection import criterion_value, select_best


def _scores(root: Path, model: str, **scores: float) -> None:
    for bench, score in scores.items():
        write_json(
            root / model / f"{bench}.json",
            {"benchmark": bench, "score": score, "n": 1, "metric": "m"},
        )


def test_picks_best_avg(tmp_path: Path) -> None:
    # a: helpful 60, harmless 20 -> AVG 40; b: helpful 30, harmless 70 -> AVG 50
    _scores(tmp_path, "dpo/g/a", gsm8k=50, arc_challenge=70, or_bench=20)
    _scores(tmp_path, "dpo/g/b", gsm8k=20, arc_challenge=40, or_bench=70)
    record = select_best(tmp_path, ["dpo/g/a", "dpo/g/b"], "AVG", tmp_path / "sel.json")
    assert record["selected"] == "dpo/g/b"
    assert record["scores"] == {"dpo/g/a": pytest.approx(40), "dpo/g/b": pytest.approx(50)}
    assert read_json(tmp_path / "sel.json") == record
    helpful = select_best(tmp_path, ["dpo/g/a", "dpo/g/b"], "Helpful Avg", tmp_path / "h.json")
    assert helpful["selected"] == "dpo/g/a"
    assert (
        select_best(tmp_path, ["dpo/g/a", "dpo/g/b"], "gsm8k", tmp_path / "x.json")["selected"]
        == "dpo/g/a"
    )


def test_ties_go_to_the_first_candidate(tmp_path: Path) -> None:
    _scores(tmp_path, "a", gsm8k=10)
    _scores(tmp_path, "b", gsm8k=10)
    assert select_best(tmp_path, ["b", "a"], "AVG", tmp_path / "s.json")["selected"] == "b"


def test_bad_criterion_and_missing_scores(tmp_path: Path) -> None:
    _scores(tmp_path, "a", gsm8k=10)
    with pytest.raises(ValueError, match="unknown selection criterion 'best'"):
        select_best(tmp_path, ["a"], "best", tmp_path / "s.json")
    with pytest.raises(FileNotFoundError, match="no score files for b"):
        select_best(tmp_path, ["a", "b"], "AVG", tmp_path / "s.json")
    with pytest.raises(ValueError, match="'Honest Avg' has no benchmark scored"):
        criterion_value({"gsm8k": 1.0}, "Honest Avg")


def test_a_single_candidate_is_selected_without_scores(tmp_path: Path) -> None:
    record = select_best(tmp_path / "no-scores", ["dpo/g/only"], "AVG", tmp_path / "one.json")
    assert record == {"selected": "dpo/g/only", "criterion": "AVG", "scores": {"dpo/g/only": None}}
