"""Benchmark id -> the function that scores it: the catalog's declaration names its runner.

A runner takes an `EvalContext` and returns the score record `{"benchmark", "score", "n",
"metric", ...}` (score on the paper's table scale); it reads what is particular to the benchmark
from `ctx.spec.options` (its declaration, mixmerge/evaluate/tasks/<id>.yaml). Runners are
imported lazily, so the CLI starts fast. A new benchmark on an existing runner is one YAML file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.catalog import Benchmark, benchmark
from mixmerge.runtime.cache import GenerationCache

# runner -> "module:function"
RUNNERS: dict[str, str] = {
    "lm_eval": "mixmerge.evaluate.lm_eval_tasks:run",
    "evalplus": "mixmerge.evaluate.evalplus_tasks:run",
    "judged": "mixmerge.evaluate.judged:run",
    "mt_bench": "mixmerge.evaluate.mt_bench:run",
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

    @property
    def spec(self) -> Benchmark:
        """The benchmark's declaration in the catalog."""
        return benchmark(self.benchmark)


def get_benchmark(name: str) -> Callable[[EvalContext], dict[str, Any]]:
    module, func = RUNNERS[benchmark(name).runner].split(":")
    return getattr(importlib.import_module(module), func)
