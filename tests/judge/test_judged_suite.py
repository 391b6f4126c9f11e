"""The judged benchmarks of one model in one process (as `mixmerge evaluate --benchmarks`
runs them), on tiny fixtures: score files complete, models loaded once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mixmerge.catalog import judged_benchmarks
from mixmerge.evaluate.run import evaluate_model
from mixmerge.io import read_json, read_jsonl
from mixmerge.report.stats import score_of, units
from mixmerge.runtime import generation
from mixmerge.tiny.judged_fixtures import mt_bench_data_files, write_judged_fixtures

JUDGED = judged_benchmarks()


def test_the_judged_benchmarks_in_one_process(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx = tmp_path / "benchmarks"
    write_judged_fixtures(fx, n_items=6, seed=0)
    cfg = {
        "evaluate": {
            "device": "cpu",
            "generation": {"backend": "hf", "max_new_tokens": 8, "batch_size": 8},
            "judge": {"backend": "hf", "mode": "likelihood", "model": str(tiny_model_dir)},
            "benchmarks": {
                "mt_bench": {"data_files": mt_bench_data_files(fx)},
                "halueval_wild": {
                    "data_files": str(fx / "halueval_wild/HaluEval_Wild_6types.json")
                },
                "salad_bench": {"data_files": str(fx / "salad_bench/base_set.json")},
                "or_bench": {
                    "data_files": {"test": str(fx / "or_bench/or-bench-hard-1k.jsonl")},
                    "toxic": {"data_files": {"test": str(fx / "or_bench/or-bench-toxic.jsonl")}},
                },
                "xstest": {"data_files": str(fx / "xstest/xstest_prompts.jsonl")},
            },
        }
    }
    generation.release_models()
    loads = []
    real_load = generation.load_hf_model

    def counting_load(*args, **kwargs):
        key = (generation._model_key(args[0]), *args[1:])
        if not any(k[:3] == (key[0], *key[1:3]) for k in generation._HF_MODELS):
            loads.append(key)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(generation, "load_hf_model", counting_load)
    out = tmp_path / "scores"
    started = time.perf_counter()
    seconds = {}
    for name in JUDGED:
        t = time.perf_counter()
        evaluate_model(cfg, tiny_model_dir, name, out)
        seconds[name] = round(time.perf_counter() - t, 2)
    total = time.perf_counter() - started
    print(f"\njudged benchmarks on the tiny model (6 items each): {seconds}, total {total:.1f} s")
    assert set(JUDGED) == set(cfg["evaluate"]["benchmarks"])
    assert len(loads) == 1  # the model (which is also the judge) was loaded once for all
    for name in JUDGED:
        record = read_json(out / f"{name}.json")
        assert record["n_unparsed"] == 0 and record["n_parsed"] >= 6
        assert record["judge_model"] == str(tiny_model_dir) and record["judge_mode"] == "likelihood"
        assert len(record["judge_prompt_sha256"]) == 64 and sum(record["counts"].values()) >= 6
        assert record["judge_usage"]["cost_usd"] is None
        samples = read_jsonl(out / f"{name}.samples.jsonl")
        # the report's bootstrap reads the same score back from the samples
        assert score_of(name, units(name, samples)) == pytest.approx(record["score"]), name
    generation.release_models()
