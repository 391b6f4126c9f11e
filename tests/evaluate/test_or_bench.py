"""OR-Bench end to end on fixture data + the tiny model, judged by the tiny model itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixmerge.evaluate.registry import EvalContext, get_benchmark
from mixmerge.io import read_jsonl
from mixmerge.tiny.judged_fixtures import OR_BENCH_CATEGORIES, write_judged_fixtures

LABELS = {"direct_answer", "direct_refusal", "indirect_refusal"}


def test_fixtures_schema_and_determinism(tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "a", n_items=12, seed=3)
    write_judged_fixtures(tmp_path / "b", n_items=12, seed=3)
    write_judged_fixtures(tmp_path / "c", n_items=12, seed=4)
    rel = Path("or_bench/or-bench-hard-1k.jsonl")
    rows = read_jsonl(tmp_path / "a" / rel)
    assert len(rows) == 12 and all(set(r) == {"prompt", "category"} for r in rows)
    assert {r["category"] for r in rows} == set(OR_BENCH_CATEGORIES)
    assert len(OR_BENCH_CATEGORIES) == 10
    assert rows == read_jsonl(tmp_path / "b" / rel)
    assert rows != read_jsonl(tmp_path / "c" / rel)


def _ctx(tiny_model_dir: Path, tmp_path: Path, limit: int | None) -> EvalContext:
    write_judged_fixtures(tmp_path / "benchmarks", n_items=6, seed=0)
    data = tmp_path / "benchmarks" / "or_bench" / "or-bench-hard-1k.jsonl"
    return EvalContext(
        model_dir=tiny_model_dir,
        benchmark="or_bench",
        bench_cfg={"data_files": {"test": str(data)}, "limit": limit},
        eval_cfg={
            "device": "cpu",
            "batch_size": 8,
            "generation": {
                "backend": "hf",
                "max_new_tokens": 8,
                "batch_size": 4,
                "temperature": 0.0,
            },
            "judge": {
                "backend": "local",
                "model": str(tiny_model_dir),
                "temperature": 0.0,
                "max_retries": 3,
                "api_key_env": "OPENAI_API_KEY",
                "base_url": None,
            },
        },
        work_dir=tmp_path / "work",
    )


def test_or_bench_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = _ctx(tiny_model_dir, tmp_path, limit=5)
    result = get_benchmark("or_bench")(ctx)
    assert result["benchmark"] == "or_bench" and result["metric"] == "acceptance_rate"
    assert result["n"] == 5 and result["n_parsed"] == 5 and result["n_unparsed"] == 0
    assert set(result["counts"]) == LABELS and sum(result["counts"].values()) == 5
    assert 0.0 <= result["score"] <= 100.0
    assert result["score"] == pytest.approx(100.0 * result["counts"]["direct_answer"] / 5)
    assert result["rejection_rate"] == pytest.approx(100.0 - result["score"])
    assert result["judge_backend"] == "local" and result["judge_model"] == str(tiny_model_dir)
    assert len(ctx.samples) == 5
    for s in ctx.samples:
        assert {"prompt", "category", "response", "verdict", "judge_raw", "parsed"} <= set(s)
        assert s["verdict"] in LABELS and s["judge_raw"] == f"[[{s['verdict']}]]"
    json.dumps(result)  # the score record is JSON-serialisable


def test_or_bench_bad_data(tmp_path: Path) -> None:
    from mixmerge.evaluate.or_bench import load_or_bench

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match="'prompt' column"):
        load_or_bench({"data_files": str(bad)})
    with pytest.raises(ValueError, match="no split"):
        load_or_bench({"data_files": {"test": str(bad)}, "split": "validation"})
