"""Benchmark registry: benchmark id -> "module:function" (imported lazily, so the CLI starts fast).

A benchmark function takes an `EvalContext` and returns the score record
`{"benchmark", "score", "n", "metric", ...}` (score on the paper's table scale).
Adding a benchmark = one module with one function + one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.evaluate.cache import GenerationCache

BENCHMARKS: dict[str, str] = {
    "gsm8k": "mixmerge.evaluate.lm_eval_tasks:gsm8k",
    "arc_challenge": "mixmerge.evaluate.lm_eval_tasks:arc_challenge",
    "arc_easy": "mixmerge.evaluate.lm_eval_tasks:arc_easy",
    "mmlu": "mixmerge.evaluate.lm_eval_tasks:mmlu",
    "math": "mixmerge.evaluate.lm_eval_tasks:math",
    "humaneval_plus": "mixmerge.evaluate.evalplus_tasks:humaneval_plus",
    "mbpp_plus": "mixmerge.evaluate.evalplus_tasks:mbpp_plus",
    "mt_bench": "mixmerge.evaluate.mt_bench:mt_bench",
    "halueval_wild": "mixmerge.evaluate.halueval_wild:halueval_wild",
    "salad_bench": "mixmerge.evaluate.salad_bench:salad_bench",
    "or_bench": "mixmerge.evaluate.or_bench:or_bench",
}

@dataclass
class EvalContext:
    """Everything a benchmark needs: the model, its own config block and the shared eval config."""

    model_dir: Path
    benchmark: str
    bench_cfg: dict[str, Any]  # config["evaluate"]["benchmarks"][benchmark]
    eval_cfg: dict[str, Any]  # config["evaluate"] (device, batch_size, generation, judge, ...)
    work_dir: Path  # scratch space for this run; removed afterwards
    samples: list[dict[str, Any]] = field(
        default_factory=list
    )  # per-item records, saved beside the score
    # the model's replies, read and stored by content digest (in memory only unless given)
    generations: GenerationCache = field(default_factory=GenerationCache)


def get_benchmark(name: str) -> Callable[[EvalContext], dict[str, Any]]:
    try:
        target = BENCHMARKS[name]
    except KeyError:
        known = ", ".join(sorted(BENCHMARKS))
        raise ValueError(f"unknown benchmark {name!r} (known: {known})") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)
