"""Held-out items are disjoint, by content hash, from every item the tables report (tiny fixtures;
the rehearsal mirror's check is in tests/test_rehearsal.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixmerge.evaluate.data_files import read_json_or_jsonl
from mixmerge.evaluate.dev_items import content_hash, write_dev_items

REPO = Path(__file__).resolve().parents[2]


def reported_hashes(name: str, cfg: dict) -> set[str]:
    """The items the table reports for `name`, read as its runner reads them."""
    from mixmerge.catalog import benchmark
    from mixmerge.evaluate.judged import _hook, load_rows
    from mixmerge.evaluate.lm_eval_tasks import SPECS

    bench = benchmark(name)
    key = bench.dev["key"]
    if bench.runner == "lm_eval":
        files = cfg["data_files"][SPECS[name].eval_split]
        rows = read_json_or_jsonl(Path(files))
    else:
        rows, _ = (_hook(bench, "load_rows") or load_rows)(cfg, bench)
    if cfg.get("limit") is not None:
        rows = rows[: int(cfg["limit"])]
    return {content_hash(r[key]) for r in rows}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from mixmerge.tiny.build import write_benchmark_fixtures

    root = tmp_path_factory.mktemp("dev-items")
    write_benchmark_fixtures(root / "results/tiny/fixtures/benchmarks", 8, 0)
    return root, yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_dev_items_are_disjoint_from_the_reported_items(tiny: tuple[Path, dict], monkeypatch) -> None:
    root, cfg = tiny
    monkeypatch.chdir(root)
    search = cfg["search"]
    manifest = write_dev_items(
        cfg["evaluate"]["benchmarks"], search["benchmarks"], [], 3, 0, root / "dev"
    )
    # every benchmark with a held-out source is an objective; the others are listed with why
    assert set(manifest["benchmarks"]) == {
        "math", "gsm8k", "arc_easy", "arc_challenge", "mmlu", "salad_bench", "or_bench",
        "truthfulqa_mc2",
    }
    assert set(manifest["left_out"]) == {"mbpp_plus", "humaneval_plus", "mt_bench", "halueval_wild", "xstest"}
    for name, entry in manifest["benchmarks"].items():
        reported = reported_hashes(name, cfg["evaluate"]["benchmarks"][name])
        assert reported and reported <= set(entry["reported_items"]), name  # all of a split held out
        data = entry["config"]["data_files"]
        scored = data if isinstance(data, str) else data[next(iter(data))]
        from mixmerge.catalog import benchmark

        rows = read_json_or_jsonl(Path(scored))
        hashes = [content_hash(r[benchmark(name).dev["key"]]) for r in rows]
        assert hashes == entry["dev_items"] and 0 < len(hashes) <= 3, name
        assert not set(hashes) & reported, f"{name}: a held-out item is reported"
        assert len(set(hashes)) == len(hashes), name
    # GSM8K's held-out items come from train, its few-shot pool: they are out of the shots
    gsm8k = manifest["benchmarks"]["gsm8k"]["config"]["data_files"]
    shots = {content_hash(r["question"]) for r in read_json_or_jsonl(Path(gsm8k["train"]))}
    assert not shots & set(manifest["benchmarks"]["gsm8k"]["dev_items"])


def test_a_benchmark_without_held_out_items_is_a_clear_error(tiny: tuple[Path, dict], monkeypatch) -> None:
    root, cfg = tiny
    monkeypatch.chdir(root)
    evaluated = {k: cfg["evaluate"]["benchmarks"][k] for k in ("salad_bench", "truthfulqa_mc2")}
    with pytest.raises(ValueError, match="search.benchmarks.halueval_wild: no held-out items"):
        write_dev_items(evaluated, {"halueval_wild": {}}, [], 3, 0, root / "bad")
    every_item = {"salad_bench": {**evaluated["salad_bench"], "sample_size": None}}
    with pytest.raises(ValueError, match="salad_bench has no held-out items left"):
        write_dev_items(every_item, {}, [], 3, 0, root / "bad")
    all_rows = {"truthfulqa_mc2": {**evaluated["truthfulqa_mc2"], "limit": None}}
    with pytest.raises(ValueError, match="reports every row of its one split"):
        write_dev_items(all_rows, {}, [], 3, 0, root / "bad")
