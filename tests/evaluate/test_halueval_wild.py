"""HaluEval-Wild: the upstream file's schema and quirks, and the benchmark end to end (tiny)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mixmerge.evaluate.data_files import sha256_file
from mixmerge.evaluate.halueval_wild import QUERY_TYPES, normalize_type
from mixmerge.evaluate.halueval_wild import load_rows as load_halueval_wild
from mixmerge.evaluate.judged import run as halueval_wild
from mixmerge.evaluate.registry import EvalContext
from mixmerge.tiny.judged_fixtures import write_judged_fixtures

SAMPLE = "halueval_wild/HaluEval_Wild_6types.sample120.json"


def tiny_eval_cfg(model_dir: Path) -> dict:
    """The tiny profile's evaluate block: greedy, a few tokens, the model judges itself."""
    return {
        "device": "cpu",
        "generation": {"backend": "hf", "max_new_tokens": 8, "batch_size": 8, "temperature": 0.0},
        "judge": {"backend": "hf", "mode": "likelihood", "model": str(model_dir)},
    }


def test_upstream_sample_loads(upstream: Path) -> None:
    path = upstream / SAMPLE
    expected = "5118ac58ffc05c33583d4b2acd02b72f1952b58945a499aeb0a69a15532cfa08"
    rows, sums = load_halueval_wild({"data_files": str(path), "sha256": expected})
    assert sums == {"data": expected}
    # 120 items, 20 per type: "other types" dropped, the five benchmark types kept
    assert Counter(r["query_type"] for r in rows) == {t: 20 for t in QUERY_TYPES}
    assert all(r["query"] and r["ref_answer"] and r["id"] for r in rows)
    assert len(load_halueval_wild({"data_files": {"data": str(path)}})[0]) == 100
    with pytest.raises(ValueError, match="sha256"):
        load_halueval_wild({"data_files": str(path), "sha256": "0" * 64})


def test_query_types_are_normalised(tmp_path: Path) -> None:
    assert normalize_type("  Inappropriate   content ") == "inappropriate content"
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"id": "1", "query": "q", "query_type": "poetry", "ref_answer": "a"}])
    )
    with pytest.raises(ValueError, match="unknown query_type 'poetry'"):
        load_halueval_wild({"data_files": str(bad)})
    bad.write_text(json.dumps([{"id": "1", "query": "q", "query_type": "complex reasoning"}]))
    with pytest.raises(ValueError, match="lacks ref_answer"):
        load_halueval_wild({"data_files": str(bad)})


def test_halueval_wild_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "benchmarks", n_items=6, seed=0)
    data = tmp_path / "benchmarks" / "halueval_wild" / "HaluEval_Wild_6types.json"
    raw = json.loads(data.read_text())
    assert len(raw) == 8 and sum(r["query_type"] == "other types" for r in raw) == 2
    assert any(r["query_type"] != normalize_type(r["query_type"]) for r in raw)
    ctx = EvalContext(
        model_dir=tiny_model_dir,
        benchmark="halueval_wild",
        bench_cfg={"data_files": str(data)},
        eval_cfg=tiny_eval_cfg(tiny_model_dir),
        work_dir=tmp_path / "work",
    )
    result = halueval_wild(ctx)
    assert result["metric"] == "no_hallucination_rate" and result["n"] == 6
    assert result["n_parsed"] == 6 and result["n_unparsed"] == 0
    halluc = result["counts"]["hallucination"]
    assert result["hallucination_rate"] == pytest.approx(100.0 * halluc / 6)
    assert result["score"] == pytest.approx(100.0 - result["hallucination_rate"])
    assert set(result["per_type"]) == set(QUERY_TYPES)  # 6 items cover all five types
    assert sum(t["n"] for t in result["per_type"].values()) == 6
    assert result["judge_prompt"] == "halueval_wild" and result["data_sha256"] == {
        "data": sha256_file(data)
    }
    assert {s["verdict"] for s in ctx.samples} <= {"hallucination", "no_hallucination"}
    json.dumps(result)
