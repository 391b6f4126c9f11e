"""Shared mixture helpers: allocation, pool capping, the append-only cache after a killed run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mix_helpers import GROUPS

from mixmerge.judge.cache import JsonlCache
from mixmerge.mix.common import allocate, composition, load_pool, subsample_pool


def test_allocate_is_exact_and_proportional() -> None:
    assert allocate(15, {"a": 12, "b": 9, "c": 6}) == {"a": 7, "b": 5, "c": 3}
    assert allocate(0, {"a": 3}) == {"a": 0}
    assert allocate(3, {"a": 1, "b": 1, "c": 1}) == {"a": 1, "b": 1, "c": 1}
    with pytest.raises(ValueError):
        allocate(4, {"a": 3})


def test_pool_and_subsample(pair_files: dict[str, Path]) -> None:
    pool = load_pool(pair_files, GROUPS)
    assert len(pool) == 177 and pool[0]["source"] == "helpsteer"
    small = subsample_pool(pool, 59, seed=0, purpose="armorm")
    by_dataset = composition(small)["by_dataset"]
    assert sum(by_dataset.values()) == 59
    # shares of 59: helpsteer 13.33, orca 6.67, grath 2.0; the 2 left go to the largest remainders
    assert (by_dataset["helpsteer"], by_dataset["distilabel_orca"], by_dataset["grath"]) == (
        14,
        7,
        2,
    )
    assert subsample_pool(pool, 59, seed=0, purpose="armorm") == small
    with pytest.raises(ValueError, match="in no group"):
        load_pool({"unknown": pair_files["helpsteer"]}, GROUPS)


def test_cache_survives_a_cut_line(tmp_path: Path) -> None:
    cache = JsonlCache(tmp_path / "c.jsonl")
    cache.put_many({"k1": {"score": 1.0}, "k2": {"score": 2.0}})
    with open(tmp_path / "c.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"key": "k3", "sco')  # a write cut short by a killed job
    again = JsonlCache(tmp_path / "c.jsonl")
    assert len(again) == 2 and again.get("k2") == {"key": "k2", "score": 2.0} and "k3" not in again


def test_cache_missing_keeps_first_item_per_uncached_key(tmp_path: Path) -> None:
    cache = JsonlCache(tmp_path / "c.jsonl")
    cache.put("a", {"score": 1.0})
    todo, hits = cache.missing([("a", "x"), ("b", "first"), ("b", "second"), ("a", "y"), ("c", "z")])
    assert todo == {"b": "first", "c": "z"}
    assert hits == 2
