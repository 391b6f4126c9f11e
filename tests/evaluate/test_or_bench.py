"""OR-Bench end to end on fixture data + the tiny model, judged by the tiny model itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mixmerge.catalog import benchmark
from mixmerge.evaluate.judged import load_rows
from mixmerge.evaluate.judged import run as or_bench
from mixmerge.evaluate.registry import EvalContext
from mixmerge.io import read_jsonl
from mixmerge.tiny.judged_fixtures import OR_BENCH_CATEGORIES, write_judged_fixtures


def load_or_bench(bench_cfg: dict) -> list[dict]:
    return load_rows(bench_cfg, benchmark("or_bench"))[0]


LABELS = {"direct_answer", "direct_refusal", "indirect_refusal"}


def tiny_eval_cfg(model_dir: Path) -> dict[str, Any]:
    """The tiny profile's evaluate block: greedy, a few tokens, the model judges itself."""
    return {
        "device": "cpu",
        "batch_size": 8,
        "generation": {"backend": "hf", "max_new_tokens": 8, "batch_size": 8, "temperature": 0.0},
        "judge": {"backend": "hf", "mode": "likelihood", "model": str(model_dir)},
    }


def test_fixtures_schema_and_determinism(tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "a", n_items=12, seed=3)
    write_judged_fixtures(tmp_path / "b", n_items=12, seed=3)
    write_judged_fixtures(tmp_path / "c", n_items=12, seed=4)
    for rel in ("or_bench/or-bench-hard-1k.jsonl", "or_bench/or-bench-toxic.jsonl"):
        rows = read_jsonl(tmp_path / "a" / rel)
        assert len(rows) == 12 and all(set(r) == {"prompt", "category"} for r in rows)
        assert {r["category"] for r in rows} == set(OR_BENCH_CATEGORIES)
        assert rows == read_jsonl(tmp_path / "b" / rel)
        assert rows != read_jsonl(tmp_path / "c" / rel)
    assert len(OR_BENCH_CATEGORIES) == 10
    # every fixture file reads line by line as JSON (the tiny tokenizer's corpus does so)
    for path in (tmp_path / "a").rglob("*.json*"):
        for line in path.read_text().splitlines():
            json.loads(line)


def test_or_bench_end_to_end_with_toxic(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "benchmarks", n_items=6, seed=0)
    folder = tmp_path / "benchmarks" / "or_bench"
    ctx = EvalContext(
        model_dir=tiny_model_dir,
        benchmark="or_bench",
        bench_cfg={
            "data_files": {"test": str(folder / "or-bench-hard-1k.jsonl")},
            "limit": 5,
            "toxic": {"data_files": str(folder / "or-bench-toxic.jsonl"), "limit": 3},
        },
        eval_cfg=tiny_eval_cfg(tiny_model_dir),
        work_dir=tmp_path / "work",
    )
    result = or_bench(ctx)
    assert result["benchmark"] == "or_bench" and result["metric"] == "acceptance_rate"
    assert result["n"] == 5 and result["n_parsed"] == 5 and result["n_unparsed"] == 0
    assert set(result["counts"]) == LABELS and sum(result["counts"].values()) == 5
    assert 0.0 <= result["score"] <= 100.0
    assert result["score"] == pytest.approx(100.0 * result["counts"]["direct_answer"] / 5)
    assert result["rejection_rate"] == pytest.approx(100.0 - result["score"])
    assert result["judge_backend"] == "hf" and result["judge_model"] == str(tiny_model_dir)
    assert result["judge_prompt"] == "or_bench" and len(result["judge_prompt_sha256"]) == 64
    assert result["judge_usage"]["requests"] == 5
    toxic = result["toxic"]
    assert toxic["n"] == 3 and toxic["n_parsed"] == 3
    refused = toxic["counts"]["direct_refusal"] + toxic["counts"]["indirect_refusal"]
    assert toxic["rejection_rate"] == pytest.approx(100.0 * refused / 3)
    assert [s["subset"] for s in ctx.samples] == ["hard"] * 5 + ["toxic"] * 3
    for s in ctx.samples:
        assert {"prompt", "category", "response", "verdict", "judge_raw", "parsed"} <= set(s)
        assert s["verdict"] in LABELS and s["judge_raw"] == f"[[{s['verdict']}]]"
    json.dumps(result)  # the score record is JSON-serialisable


def test_or_bench_bad_data(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match="lacks its 'prompt' field"):
        load_or_bench({"data_files": str(bad)})
    with pytest.raises(ValueError, match="no split"):
        load_or_bench({"data_files": {"test": str(bad)}, "split": "validation"})
