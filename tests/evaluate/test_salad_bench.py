"""SaladBench: Salad-Data subsets and sampling, MD-Judge scores, and the benchmark end to end
(tiny model judging itself in likelihood mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixmerge.evaluate.judged import run as salad_bench
from mixmerge.evaluate.registry import EvalContext
from mixmerge.evaluate.salad_bench import load_rows as load_salad
from mixmerge.evaluate.salad_bench import md_judge_score
from mixmerge.tiny.judged_fixtures import write_judged_fixtures


def tiny_eval_cfg(model_dir: Path) -> dict:
    """The tiny profile's evaluate block: greedy, a few tokens, the model judges itself."""
    return {
        "device": "cpu",
        "generation": {"backend": "hf", "max_new_tokens": 8, "batch_size": 8, "temperature": 0.0},
        "judge": {"backend": "hf", "mode": "likelihood", "model": str(model_dir)},
    }


def test_upstream_defense_subset(upstream: Path) -> None:
    path = upstream / "salad/defense_enhanced_set.first30.json"
    rows, sums = load_salad({"data_files": str(path), "name": "defense_enhanced_set"})
    assert len(rows) == 30 and len(sums["data"]) == 64
    first = json.loads(path.read_text())[0]
    assert rows[0]["question"] == first["daugq"] and rows[0]["qid"] == first["qid"]
    assert rows[0]["1-category"] == "O1: Representation & Toxicity"
    assert rows[0]["3-category"] == "O12: Religious Stereotyping"
    with pytest.raises(ValueError, match="question field 'question'"):
        load_salad({"data_files": str(path), "name": "base_set"})
    with pytest.raises(ValueError, match="mcq_set is multiple choice"):
        load_salad({"data_files": str(path), "name": "mcq_set"})


def test_sampling_is_seeded_and_ordered(tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path, n_items=20, seed=0)
    path = str(tmp_path / "salad_bench" / "base_set.json")
    every = [r["qid"] for r in load_salad({"data_files": path})[0]]
    a = [r["qid"] for r in load_salad({"data_files": path, "sample_size": 7, "seed": 1})[0]]
    b = [r["qid"] for r in load_salad({"data_files": path, "sample_size": 7, "seed": 1})[0]]
    c = [r["qid"] for r in load_salad({"data_files": path, "sample_size": 7, "seed": 2})[0]]
    assert a == b != c and len(a) == 7 and a == sorted(a) and set(a) <= set(every)
    assert len(load_salad({"data_files": path, "sample_size": 99})[0]) == 20


def test_md_judge_score() -> None:
    assert md_judge_score("[REASONING]: ...\n[RESULT]: unsafe, score 4\n[UNSAFE CATEGORY]: O1") == 4
    assert md_judge_score("[RESULT]: safe, score 1") == 1
    assert md_judge_score("safe") is None


def test_salad_bench_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "benchmarks", n_items=6, seed=0)
    data = tmp_path / "benchmarks" / "salad_bench" / "base_set.json"
    ctx = EvalContext(
        model_dir=tiny_model_dir,
        benchmark="salad_bench",
        bench_cfg={"data_files": str(data), "name": "base_set", "sample_size": 5, "seed": 0},
        eval_cfg=tiny_eval_cfg(tiny_model_dir),
        work_dir=tmp_path / "work",
    )
    result = salad_bench(ctx)
    assert result["metric"] == "safe_rate" and result["n"] == 5 and result["subset"] == "base_set"
    assert result["n_parsed"] == 5 and result["n_unparsed"] == 0
    assert result["score"] == pytest.approx(100.0 * result["counts"]["safe"] / 5)
    assert set(result["per_category"]) == {"1-category", "2-category", "3-category"}
    assert sum(c["n"] for c in result["per_category"]["1-category"].values()) == 5
    assert result["judge_prompt"] == "salad_bench" and "MD-Judge" in result["judge_prompt_source"]
    for s in ctx.samples:
        assert s["verdict"] in ("safe", "unsafe") and s["judge_raw"] == f"[RESULT]: {s['verdict']}"
    json.dumps(result)
