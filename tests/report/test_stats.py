"""Bootstrap intervals and paired tests against closed forms, and the tables built on them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from mixmerge.report.scores import COLUMNS
from mixmerge.report.stats import Bootstrap, p_value, units
from mixmerge.report.tables import write_tables


def _binary(correct: list[bool]) -> list[tuple[str, float, float]]:
    return [(str(i), float(c), 1.0) for i, c in enumerate(correct)]


def test_binary_standard_error_matches_the_closed_form() -> None:
    n, k = 400, 120  # p = 0.3
    boot = Bootstrap({"m": {"gsm8k": _binary([i < k for i in range(n)])}}, bootstrap=2000)
    interval = boot.interval("GSM8K", "m")
    closed = 100 * math.sqrt(0.3 * 0.7 / n)
    assert interval is not None and abs(interval.se - closed) / closed < 0.10
    assert interval.low < 30.0 < interval.high
    assert abs(interval.half_width - 1.96 * closed) / (1.96 * closed) < 0.15


def test_paired_differences() -> None:
    base = [i % 3 == 0 for i in range(300)]  # 100 of 300 correct
    better = list(base)
    flipped = [i for i, c in enumerate(base) if not c][:30]
    for i in flipped:  # 30 items right where the other model was wrong, none the other way
        better[i] = True
    boot = Bootstrap(
        {
            "a": {"gsm8k": _binary(base)},
            "twin": {"gsm8k": _binary(base)},
            "b": {"gsm8k": _binary(better)},
        }
    )
    same = boot.compare("GSM8K", "a", "twin", 0.0)
    assert same is not None and same.p == 1.0 and same.interval.low == same.interval.high == 0.0
    differ = boot.compare("GSM8K", "b", "a", 10.0)
    assert differ is not None and differ.p < 0.001 and differ.interval.low > 0
    assert boot.differs("GSM8K", "b", "a", 10.0) is True
    assert boot.compare("GSM8K", "a", "nobody", 0.0) is None
    assert p_value(0.0, 0.0) == 1.0 and p_value(1.0, 0.0) == 0.0


def test_same_inputs_and_seed_give_identical_intervals() -> None:
    data = {"m": {"arc_easy": _binary([i % 4 == 0 for i in range(80)])}}
    first, again = Bootstrap(data, seed=7), Bootstrap(data, seed=7)
    other = Bootstrap(data, seed=8)
    assert first.interval("ARC-E", "m") == again.interval("ARC-E", "m")
    assert first.interval("ARC-E", "m") != other.interval("ARC-E", "m")


def test_units_per_benchmark() -> None:
    mt = [
        {"question_id": q, "turn": t, "score": s, "parsed": s != -1}
        for q, t, s in [(1, 1, 8), (1, 2, 6), (2, 1, 5), (2, 2, -1)]
    ]
    assert units("mt_bench", mt) == [("[1]", 14.0, 2.0), ("[2]", 5.0, 1.0)]  # turns together
    judged = [
        {"id": "a", "verdict": "no_hallucination", "parsed": True},
        {"id": "b", "verdict": "hallucination", "parsed": True},
        {"id": "c", "verdict": None, "parsed": False},  # left out of the score: counts nothing
    ]
    assert [u[1:] for u in units("halueval_wild", judged)] == [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    or_rows = [
        {"subset": "hard", "prompt": "p", "verdict": "direct_answer", "parsed": True},
        {"subset": "toxic", "prompt": "t", "verdict": "direct_refusal", "parsed": True},
    ]
    assert units("or_bench", or_rows) == [('["p"]', 1.0, 1.0)]  # the score is the hard set's
    boot = Bootstrap({"m": {"mt_bench": units("mt_bench", mt)}}, bootstrap=50)
    interval = boot.interval("MT-Bench", "m")
    assert interval is not None and 5.0 <= interval.low <= interval.high <= 7.0  # raw 1-10 scale


def _write_model(root: Path, model: str, correct: dict[str, list[bool]], samples: bool) -> None:
    folder = root / model
    folder.mkdir(parents=True)
    for bench in COLUMNS:
        items = correct.get(bench, [True, False, True, False])
        score = (10.0 if bench == "mt_bench" else 100.0) * sum(items) / len(items)
        record = {"benchmark": bench, "score": score, "n": len(items), "metric": "x"}
        if bench in ("humaneval_plus", "mbpp_plus"):
            record["base_score"] = 100.0 * sum(c or i % 2 for i, c in enumerate(items)) / len(items)
        (folder / f"{bench}.json").write_text(json.dumps(record))
        if not samples:
            continue
        if bench == "mt_bench":
            rows = [
                {"question_id": i, "turn": t, "score": 10.0 * c, "parsed": True}
                for i, c in enumerate(items)
                for t in (1, 2)
            ]
        elif bench in ("halueval_wild", "salad_bench", "or_bench"):
            good, bad = {
                "halueval_wild": ("no_hallucination", "hallucination"),
                "salad_bench": ("safe", "unsafe"),
                "or_bench": ("direct_answer", "direct_refusal"),
            }[bench]
            rows = [
                {"id": i, "qid": i, "prompt": str(i), "subset": "hard", "parsed": True,
                 "verdict": good if c else bad}
                for i, c in enumerate(items)
            ]  # fmt: skip
        else:  # evalplus: base tests pass on every other item beside the correct ones
            rows = [
                {"task": bench, "task_id": i, "doc_id": i, "correct": c,
                 "base_status": "pass" if c or i % 2 else "fail"}
                for i, c in enumerate(items)
            ]  # fmt: skip
        (folder / f"{bench}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_tables_show_intervals_share_marks_when_not_significant_and_compare(
    tmp_path: Path,
) -> None:
    scores = tmp_path / "scores"
    n = 200
    strong = [i % 10 < 7 for i in range(n)]  # 70%
    close = [i % 10 < 7 and i != 3 for i in range(n)]  # 69.5%: one item less
    weak = [i % 10 < 3 for i in range(n)]  # 30%
    everything = dict.fromkeys(COLUMNS, strong)
    _write_model(scores, "base", dict.fromkeys(COLUMNS, weak), samples=True)
    _write_model(scores, "mix/heuristic/0.1", dict.fromkeys(COLUMNS, weak), samples=True)
    _write_model(scores, "merge/static/ties", everything, samples=True)
    _write_model(scores, "merge/static/tsvm", dict.fromkeys(COLUMNS, close), samples=True)
    _write_model(scores, "merge/static/r_tsvm", dict.fromkeys(COLUMNS, weak), samples=True)
    _write_model(scores, "merge/static/dare_ties", everything, samples=False)  # copied, no samples
    _write_model(scores, "dpo/helpfulness/b0.1-lr5e-07", everything, samples=True)  # trade-off bars
    out = tmp_path / "tables"
    write_tables(scores, out, bootstrap=300)
    rows = {r["model"]: r for r in csv.DictReader((out / "static.csv").open())}
    ties, tsvm, dare = rows["merge/static/ties"], rows["merge/static/tsvm"], rows["merge/static/dare_ties"]
    # 70.00 vs 69.50 on 200 items is noise: both best; 30% is significantly worse: second
    assert "GSM8K" in ties["best"].split(";") and "GSM8K" in tsvm["best"].split(";")
    assert "GSM8K" in rows["merge/static/r_tsvm"]["second"].split(";")
    assert float(ties["GSM8K low"]) < 70.0 < float(ties["GSM8K high"])
    assert float(ties["AVG low"]) < float(ties["AVG"]) < float(ties["AVG high"])
    assert dare["GSM8K low"] == dare["GSM8K high"] == ""  # no samples: no interval, no break
    md = (out / "static.md").read_text()
    assert "±" in md and "Shared best marks" in md
    assert 'title="95% CI [' in (out / "static.html").read_text()
    # the comparisons: every merge vs the best mixture and vs the base
    comp = list(csv.DictReader((out / "comparisons.csv").open()))
    avg = {(r["model"], r["reference_model"]): r for r in comp if r["column"] == "AVG"}
    strong_vs_mix = avg[("merge/static/ties", "mix/heuristic/0.1")]
    assert float(strong_vs_mix["delta"]) > 0 and float(strong_vs_mix["p"]) < 0.001
    same = avg[("merge/static/r_tsvm", "base")]
    assert float(same["delta"]) == 0.0 and float(same["p"]) == 1.0
    assert avg[("merge/static/dare_ties", "base")]["p"] == ""  # n/a without samples
    assert "vs best mixture (Heuristic (0.1)): ΔAVG" in (out / "comparisons.md").read_text()
    # every score file's interval, sub-scores too (evalplus base tests)
    intervals = {
        (r["model"], r["benchmark"], r["score"]): r
        for r in csv.DictReader((out / "intervals.csv").open())
    }
    plus = intervals[("merge/static/ties", "humaneval_plus", "score")]
    base_tests = intervals[("merge/static/ties", "humaneval_plus", "base_score")]
    assert float(plus["low"]) < float(plus["value"]) == 70.0 < float(plus["high"])
    assert float(base_tests["low"]) < float(base_tests["value"]) == 90.0 < float(base_tests["high"])
    assert intervals[("merge/static/dare_ties", "gsm8k", "score")]["se"] == ""
    # the figures carry the intervals as error bars
    from mixmerge.report.figures import write_figures

    drawn = write_figures(scores, tmp_path / "figures", bootstrap=300)
    assert {p.name for p in drawn} >= {"tradeoff.png", "pareto.png", "seeds.png"}
    # byte-identical on a second run
    again = tmp_path / "again"
    write_tables(scores, again, bootstrap=300)
    for name in ("static.csv", "comparisons.csv", "static.md", "intervals.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
