"""The generation cache: keyed by model content, shared across processes, kill-safe; sampled
replies reproducible per item; a killed `mixmerge evaluate` resumes without regenerating."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixmerge import config
from mixmerge.evaluate.run import evaluate_model
from mixmerge.runtime.cache import GenerationCache
from mixmerge.runtime.generation import SeededSampling, generate_chat, item_seed
from mixmerge.tiny.judged_fixtures import mt_bench_data_files, write_judged_fixtures
from mixmerge.tiny.lmeval_fixtures import write_lmeval_fixtures

REPO = Path(__file__).resolve().parents[2]
GREEDY = {"max_new_tokens": 8, "temperature": 0.0}


def _fake_model(path: Path, weights: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def _echo(prompts: list[str], calls: list[list[str]]):
    """A generator that answers each prompt with its upper-case form, batch by batch."""

    def run(todo, save):
        calls.append([prompts[i] for i in todo])
        for start in range(0, len(todo), 2):
            part = todo[start : start + 2]
            save(part, [prompts[i].upper() for i in part])

    return run


def test_entries_are_keyed_by_content_shared_by_writers_and_survive_torn_lines(
    tmp_path: Path,
) -> None:
    model = _fake_model(tmp_path / "a")
    root = tmp_path / "cache"
    prompts = ["one", "two", "one", "three"]
    calls: list[list[str]] = []
    first = GenerationCache(model, root)
    replies = first.generate("hf", prompts[:3], [GREEDY] * 3, _echo(prompts, calls))
    assert replies == ["ONE", "TWO", "ONE"]
    assert calls == [["one", "two"]]  # a repeated prompt is generated once
    assert (first.tally.generated, first.tally.cached) == (2, 1)

    # a second process: reads the first one's file, writes its own
    second = GenerationCache(model, root)
    assert second.generate("hf", prompts, [GREEDY] * 4, _echo(prompts, calls))[3] == "THREE"
    assert calls[-1] == ["three"] and (second.tally.generated, second.tally.cached) == (1, 3)
    files = sorted((root / "generations" / second.digest).glob("*.jsonl"))
    assert len(files) == 2

    # a writer killed mid-line leaves a torn last line: skipped, the rest is read
    with open(files[0], "a", encoding="utf-8") as handle:
        handle.write('{"key": "abc", "repl')
    third = GenerationCache(model, root)
    assert len(third) == 3

    # other decoding settings or other weights are other entries; equal weights share all
    assert third.key("hf", "one", GREEDY) != third.key("hf", "one", {**GREEDY, "max_new_tokens": 9})
    assert third.key("hf", "one", GREEDY) != third.key("vllm", "one", GREEDY)
    other = GenerationCache(_fake_model(tmp_path / "b", b"other weights"), root)
    assert other.digest != third.digest and len(other) == 0
    twin = GenerationCache(_fake_model(tmp_path / "c"), root)
    assert twin.digest == third.digest and len(twin) == 3

    # a generator that drops replies is an error, not a silent gap
    with pytest.raises(RuntimeError, match="no reply for 1 prompts"):
        twin.generate("hf", ["four"], [GREEDY], lambda todo, save: None)
    memory = GenerationCache()  # no root: nothing on disk
    assert memory.generate("hf", ["x"], [GREEDY], _echo(["x"], [])) == ["X"] and memory.dir is None


def test_seeded_sampling_draws_the_softmax_distribution() -> None:
    import torch

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(4000, 1)
    sampler = SeededSampling(1.0, 0, 1.0, seeds=list(range(4000)), device="cpu")
    picks = sampler(None, logits).argmax(-1)
    freq = torch.bincount(picks, minlength=4).float() / 4000
    expected = torch.softmax(logits[0], -1)
    assert torch.allclose(freq, expected, atol=0.03), (freq, expected)
    # temperature sharpens, top-k cuts: with top_k=1 every draw is the arg-max
    top1 = SeededSampling(1.0, 1, 1.0, seeds=list(range(50)), device="cpu")
    assert (top1(None, logits[:50]).argmax(-1) == 2).all()
    assert item_seed(0, "a") != item_seed(1, "a") and item_seed(0, "a") == item_seed(0, "a")


def test_sampled_replies_do_not_depend_on_batch_mates(tiny_model_dir: Path) -> None:
    convs = [[{"role": "user", "content": q}] for q in ("Hi", "Why is the sky blue?", "Name a fruit")]
    cfg = {"backend": "hf", "max_new_tokens": 6, "temperature": 1.0, "top_k": 0, "seed": 3}
    together = generate_chat(tiny_model_dir, convs, {**cfg, "batch_size": 3}, "cpu")
    alone = [generate_chat(tiny_model_dir, [c], {**cfg, "batch_size": 1}, "cpu")[0] for c in convs]
    assert together == alone
    reseeded = generate_chat(tiny_model_dir, convs, {**cfg, "seed": 4, "batch_size": 3}, "cpu")
    greedy = generate_chat(tiny_model_dir, convs, {**cfg, "temperature": 0.0}, "cpu")
    assert reseeded != together and greedy != together


def _config(tmp_path: Path, model: Path, benchmarks: dict, cache: Path) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["evaluate"] = {
        "device": "cpu",
        "batch_size": 4,
        "cache_dir": str(cache),
        "generation": {"backend": "hf", "max_new_tokens": 24, "batch_size": 2},
        "judge": {"backend": "hf", "mode": "likelihood", "model": str(model)},
        "benchmarks": benchmarks,
    }
    return cfg


def _lines(cache: Path) -> int:
    files = list((cache / "generations").glob("*/*.jsonl"))
    return sum(f.read_text(encoding="utf-8").count("\n") for f in files)


def test_killed_evaluate_resumes_without_regenerating_and_twins_generate_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    n = 12
    write_judged_fixtures(tmp_path / "fx", n_items=n, seed=0)  # short rows: a quick judge
    data = tmp_path / "fx" / "halueval_wild" / "HaluEval_Wild_6types.json"
    benchmarks = {"halueval_wild": {"data_files": str(data), "limit": n}}
    # the reference: one uninterrupted run, with a cache of its own
    reference = evaluate_model(
        _config(tmp_path, tiny_model_dir, benchmarks, tmp_path / "ref-cache"),
        tiny_model_dir,
        "halueval_wild",
        tmp_path / "ref",
    )
    unique = len({row["query"] for row in json.loads(data.read_text())[:n]})
    assert unique >= 8  # a repeated query is generated once, and counts as cached
    assert reference["generated"] == {"model": unique, "judge": n}
    assert reference["cached"] == {"model": n - unique, "judge": 0}

    cache = tmp_path / "cache"
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(_config(tmp_path, tiny_model_dir, benchmarks, cache)))
    out = tmp_path / "scores"
    cli = str(Path(sys.executable).with_name("mixmerge"))  # the installed console script
    command = [cli, "evaluate", "--config", str(cfg_file),
               "--model", str(tiny_model_dir), "--benchmarks", "halueval_wild", "--out", str(out)]
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _lines(cache) < 4 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done = _lines(cache)
    assert 4 <= done < unique, f"kill landed at {done} of {n} replies: {job.stderr.read()[-2000:]!r}"
    assert not (out / "halueval_wild.json").exists()  # no half-written score file

    # the same command again (in this process: `mixmerge evaluate` is this call per benchmark)
    resumed = evaluate_model(config.load(cfg_file), tiny_model_dir, "halueval_wild", out)
    assert resumed["cached"]["model"] >= done + n - unique  # every reply made before the kill
    assert resumed["generated"]["model"] == n - resumed["cached"]["model"]
    assert resumed["score"] == reference["score"]
    assert resumed["per_type"] == reference["per_type"]

    # a byte-identical copy under another name (two recipes that agree): all from the cache
    twin = tmp_path / "twin"
    shutil.copytree(tiny_model_dir, twin)
    again = evaluate_model(
        _config(tmp_path, tiny_model_dir, benchmarks, cache), twin, "halueval_wild", tmp_path / "t"
    )
    assert again["generated"] == {"model": 0, "judge": 0}
    assert again["cached"] == {"model": n, "judge": n}
    assert again["score"] == reference["score"] and again["model_digest"] == resumed["model_digest"]


def test_every_kind_of_generation_is_cached(
    tiny_model_dir: Path, upstream: Path, tmp_path: Path
) -> None:
    """MT-Bench's two turns, lm-eval's requests and evalplus's completions: a twin of the model
    generates none of them again, and scores the same."""
    fx = tmp_path / "fx"
    write_judged_fixtures(fx, n_items=3, seed=0)
    write_lmeval_fixtures(fx, n_items=3, seed=0)
    benchmarks = {
        "mt_bench": {"data_files": mt_bench_data_files(fx)},
        "gsm8k": {
            "data_files": {
                "train": str(upstream / "gsm8k/train.head10.jsonl"),
                "test": str(upstream / "gsm8k/test.head30.jsonl"),
            },
            "num_fewshot": 1,
            "limit": 3,
            "gen_kwargs": {"max_gen_toks": 8},
        },
        "arc_easy": {  # loglikelihood requests
            "data_files": {s: str(fx / f"arc_easy/{s}.jsonl") for s in ("train", "validation", "test")},
            "num_fewshot": 0,
        },
        "humaneval_plus": {
            "data_files": str(upstream / "evalplus/HumanEvalPlus-v0.1.10.head10.jsonl"),
            "limit": 2,
            "generation": {"max_new_tokens": 16},
            "parallel": 1,
        },
    }
    cfg = _config(tmp_path, tiny_model_dir, benchmarks, tmp_path / "cache")
    twin = tmp_path / "twin"
    shutil.copytree(tiny_model_dir, twin)
    first = {b: evaluate_model(cfg, tiny_model_dir, b, tmp_path / "a") for b in benchmarks}
    second = {b: evaluate_model(cfg, twin, b, tmp_path / "b") for b in benchmarks}
    summary = {b: (first[b]["generated"], second[b]["cached"]) for b in benchmarks}
    print(f"\ngenerated on the first model, cached on its twin: {json.dumps(summary)}")
    for name in benchmarks:
        assert first[name]["generated"]["model"] > 0, name
        assert second[name]["generated"]["model"] == 0, name
        assert second[name]["cached"]["model"] == first[name]["generated"]["model"], name
        assert second[name]["score"] == first[name]["score"], name
    assert first["mt_bench"]["generated"]["model"] == 6  # 3 questions x 2 turns
    assert second["mt_bench"]["generated"]["judge"] == 0
