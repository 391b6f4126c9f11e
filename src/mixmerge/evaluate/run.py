"""Run one benchmark on one model and write its score record (and per-item samples) atomically."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mixmerge.evaluate.registry import EvalContext, get_benchmark
from mixmerge.io import write_json, write_jsonl

REQUIRED_KEYS = ("benchmark", "score", "n", "metric")


def evaluate_model(
    cfg: dict[str, Any], model_dir: Path, benchmark: str, out_dir: Path
) -> dict[str, Any]:
    eval_cfg = cfg["evaluate"]
    if benchmark not in eval_cfg["benchmarks"]:
        raise ValueError(f"benchmark {benchmark!r} is not configured under evaluate.benchmarks")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"not a model directory (no config.json): {model_dir}")
    run = get_benchmark(benchmark)
    work_dir = Path(tempfile.mkdtemp(prefix=f"mixmerge-{benchmark}-"))
    ctx = EvalContext(
        model_dir=model_dir,
        benchmark=benchmark,
        bench_cfg=dict(eval_cfg["benchmarks"][benchmark] or {}),
        eval_cfg=eval_cfg,
        work_dir=work_dir,
    )
    started = time.time()
    try:
        record = run(ctx)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ValueError(f"benchmark {benchmark!r} returned a record without {', '.join(missing)}")
    if record["score"] is None or not math.isfinite(float(record["score"])):
        raise ValueError(
            f"benchmark {benchmark!r}: no item could be scored on {model_dir} "
            f"(score {record['score']}; see the samples for unparsed verdicts)"
        )
    record = {**record, "model": str(model_dir), "seconds": round(time.time() - started, 1)}
    # Samples first: the score file is the output Snakemake waits for, so it is written last.
    write_jsonl(out_dir / f"{benchmark}.samples.jsonl", ctx.samples)
    write_json(out_dir / f"{benchmark}.json", record)
    return record
