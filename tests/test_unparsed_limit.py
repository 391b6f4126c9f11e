"""evaluate.max_unparsed_fraction: a judged score over a biased share of the items is refused.

HaluEval-Wild on the 100 benchmark items of the real upstream sample, judged through the real
openai client by the local stand-in judge, which refuses (no verdict) the items carrying a marker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rehearsal_judge import JudgeServer

from mixmerge.evaluate.run import evaluate_model
from mixmerge.report.tables import write_tables

SAMPLE = "halueval_wild/HaluEval_Wild_6types.sample120.json"
MARKER = "(please refuse)"


def _data(upstream: Path, tmp_path: Path, refused: int) -> Path:
    rows = json.loads((upstream / SAMPLE).read_text(encoding="utf-8"))
    kept = [i for i, r in enumerate(rows) if r["query_type"].strip().lower() != "other types"]
    assert len(kept) == 100
    for i in kept[:refused]:
        rows[i] = {**rows[i], "query": f"{rows[i]['query']} {MARKER}"}
    path = tmp_path / f"halueval_wild_{refused}.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _config(model_dir: Path, data: Path, base_url: str) -> dict:
    return {
        "evaluate": {
            "device": "cpu",
            "generation": {"backend": "hf", "max_new_tokens": 2, "batch_size": 16},
            "judge": {
                "backend": "openai",
                "model": "judge",
                "base_url": base_url,
                "api_key_env": None,
                "max_retries": 0,  # a refusal is asked again by default; here it stays one
                "concurrency": 4,
            },
            "benchmarks": {"halueval_wild": {"data_files": str(data)}},
        }
    }


def test_unparsed_share_above_the_limit_fails_below_it_is_marked(
    tiny_model_dir: Path, upstream: Path, tmp_path: Path
) -> None:
    with JudgeServer(refuse_marker=MARKER) as server:
        five = _config(tiny_model_dir, _data(upstream, tmp_path, 5), server.base_url)
        out = tmp_path / "scores" / "base"
        with pytest.raises(ValueError) as failed:
            evaluate_model(five, tiny_model_dir, "halueval_wild", out)
        message = str(failed.value)
        assert "\n" not in message  # one line
        assert message.startswith(f"halueval_wild on {tiny_model_dir}: 5 of 100 judge replies")
        assert "5.0% > evaluate.max_unparsed_fraction 2%" in message
        assert "I'm sorry, but I can't help" in message  # one raw reply, for the diagnosis
        assert not (out / "halueval_wild.json").exists()
        failed_samples = (out / "halueval_wild.failed.samples.jsonl").read_text().splitlines()
        assert len(failed_samples) == 100  # every item kept for the diagnosis

        one = _config(tiny_model_dir, _data(upstream, tmp_path, 1), server.base_url)
        record = evaluate_model(one, tiny_model_dir, "halueval_wild", out)
    assert (record["n"], record["n_parsed"], record["n_unparsed"]) == (100, 99, 1)
    assert not (out / "halueval_wild.failed.samples.jsonl").exists()
    samples = [json.loads(line) for line in (out / "halueval_wild.samples.jsonl").open()]
    assert len(samples) == 100 and sum(not s["parsed"] for s in samples) == 1
    # empty answers are items too: they are judged, never skipped
    assert all("response" in s for s in samples)

    written = write_tables(tmp_path / "scores", tmp_path / "tables", formats=("md", "csv"))
    static = next(p for p in written if p.name == "static.md").read_text(encoding="utf-8")
    base_row = next(line for line in static.splitlines() if line.startswith("| Base |"))
    assert f"{record['score']:.2f}†" in base_row
    assert "unparsable judge replies left out" in static and "Base HaluEval_Wild 1" in static
    csv_text = next(p for p in written if p.name == "static.csv").read_text(encoding="utf-8")
    assert "HaluEval_Wild=1" in csv_text
