"""`mixmerge tiny`: the tiny offline profile's model, tokenizer and fixture data, from code only."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixmerge.catalog import catalog
from mixmerge.io import atomic_dir
from mixmerge.tiny.datasets import write_training_fixtures
from mixmerge.tiny.model import build_tiny_model
from mixmerge.tiny.reward_model import build_tiny_reward_model


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def fixture_corpus(root: Path) -> Iterator[str]:
    """Every string in every fixture file: the tokenizer is trained on exactly this text."""
    for path in sorted(root.rglob("*.json*")):
        text = path.read_text(encoding="utf-8")
        try:
            yield from _strings(json.loads(text))  # a JSON document (e.g. a JSON array)
        except json.JSONDecodeError:
            for line in text.splitlines():  # JSON Lines
                if line.strip():
                    yield from _strings(json.loads(line))


def write_benchmark_fixtures(out_dir: Path, n_items: int, seed: int) -> None:
    """Every catalog benchmark's fixture files under `out_dir/<benchmark>/` (its `fixture`)."""
    for bench in catalog().values():
        if bench.fixture:
            module, func = bench.fixture.split(":")
            getattr(importlib.import_module(module), func)(out_dir, n_items, seed)


def build_tiny(
    out_dir: str | Path, pairs_per_dataset: int = 24, items_per_benchmark: int = 8, seed: int = 0
) -> Path:
    """Write `out_dir/{model,datasets,benchmarks}`; atomic as a whole."""
    with atomic_dir(out_dir) as tmp:
        write_training_fixtures(tmp / "datasets", pairs_per_dataset, seed)
        write_benchmark_fixtures(tmp / "benchmarks", items_per_benchmark, seed)
        corpus = list(fixture_corpus(tmp))
        build_tiny_model(tmp / "model", corpus, seed=seed)
        # A sequence-classification reward model on the same tokenizer (the ArmoRM stand-in).
        build_tiny_reward_model(tmp / "reward_model", tmp / "model", seed=seed)
    return Path(out_dir)
