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
from mixmerge.runtime.cache import GenerationCache, Tally, default_cache_dir

REQUIRED_KEYS = ("benchmark", "score", "n", "metric")
DEFAULT_MAX_UNPARSED_FRACTION = 0.02


def judged_parts(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, part) of a score record that carry judge verdict counts: the record itself and any
    judged sub-record (OR-Bench's `toxic`)."""
    parts = [("", record)] if "n_unparsed" in record else []
    parts += [
        (key, value)
        for key, value in record.items()
        if isinstance(value, dict) and "n_unparsed" in value
    ]
    return parts


def check_unparsed(
    record: dict[str, Any], samples: list[dict[str, Any]], limit: float, where: str
) -> None:
    """Fail when the unparsable judge replies of any judged part exceed `limit` of its items.

    A score over the parsed verdicts only is biased when many are missing (safety refusals of the
    judge, empty replies, a changed output format), so above the limit no score is written.
    """
    for name, part in judged_parts(record):
        n_unparsed = int(part["n_unparsed"])
        total = n_unparsed + int(part.get("n_parsed", 0))
        if not total or n_unparsed / total <= limit:
            continue
        bad = [
            s for s in samples if s.get("parsed") is False and (not name or s.get("subset") == name)
        ]
        example = repr(str(bad[0].get("judge_raw", ""))[:200]) if bad else "(none recorded)"
        label = f"{record['benchmark']}" + (f" ({name})" if name else "")
        raise ValueError(
            f"{label} on {where}: {n_unparsed} of {total} judge replies unparsable "
            f"({100 * n_unparsed / total:.1f}% > evaluate.max_unparsed_fraction "
            f"{100 * limit:g}%); one reply: {example}"
        )


def with_judge_cache(eval_cfg: dict[str, Any], cache_dir: Path | None) -> dict[str, Any]:
    """evaluate's config with the judge replies cached under the evaluation cache unless
    evaluate.judge.cache_dir names another place."""
    judge = dict(eval_cfg.get("judge") or {})
    if cache_dir is not None and not judge.get("cache_dir"):
        judge["cache_dir"] = str(cache_dir / "judge")
    return {**eval_cfg, "judge": judge}


def judge_tally(record: dict[str, Any]) -> Tally:
    """Judge verdicts of a score record (all its judged parts): new ones and cached ones."""
    tally = Tally()
    parts = [record] + [v for v in record.values() if isinstance(v, dict)]
    for part in parts:
        usage = part.get("judge_usage")
        if isinstance(usage, dict) and "items" in usage:
            cached = int(usage.get("cached", 0))
            tally.cached += cached
            tally.generated += int(usage["items"]) - cached
    return tally


def evaluate_model(
    cfg: dict[str, Any],
    model_dir: Path,
    benchmark: str,
    out_dir: Path,
    digest: str | None = None,
) -> dict[str, Any]:
    """Score `benchmark` on the model in `model_dir` and write its score and samples to `out_dir`.

    `digest` names the weights when they are not in `model_dir` (a model held in memory by
    `runtime.generation.pin_model`): it keys the model's replies in the generation cache."""
    eval_cfg = cfg["evaluate"]
    if benchmark not in eval_cfg["benchmarks"]:
        raise ValueError(f"benchmark {benchmark!r} is not configured under evaluate.benchmarks")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"not a model directory (no config.json): {model_dir}")
    run = get_benchmark(benchmark)
    cache_dir = default_cache_dir(cfg)
    eval_cfg = with_judge_cache(eval_cfg, cache_dir)
    work_dir = Path(tempfile.mkdtemp(prefix=f"mixmerge-{benchmark}-"))
    ctx = EvalContext(
        model_dir=model_dir,
        benchmark=benchmark,
        bench_cfg=dict(eval_cfg["benchmarks"][benchmark] or {}),
        eval_cfg=eval_cfg,
        work_dir=work_dir,
        generations=GenerationCache(model_dir, cache_dir, digest),
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
    limit = float(eval_cfg.get("max_unparsed_fraction", DEFAULT_MAX_UNPARSED_FRACTION))
    try:
        check_unparsed(record, ctx.samples, limit, str(model_dir))
    except ValueError:
        # No score, but the replies stay readable for the diagnosis (not a Snakemake output).
        write_jsonl(out_dir / f"{benchmark}.failed.samples.jsonl", ctx.samples)
        raise
    judge = judge_tally(record)
    record = {
        **record,
        "model": str(model_dir),
        "model_digest": ctx.generations.digest,
        "seconds": round(time.time() - started, 1),
        # what this run computed, and what it read from the caches (model replies or lm-eval
        # requests; judge verdicts)
        "generated": {"model": ctx.generations.tally.generated, "judge": judge.generated},
        "cached": {"model": ctx.generations.tally.cached, "judge": judge.cached},
    }
    # Samples first: the score file is the output Snakemake waits for, so it is written last.
    write_jsonl(out_dir / f"{benchmark}.samples.jsonl", ctx.samples)
    write_json(out_dir / f"{benchmark}.json", record)
    (out_dir / f"{benchmark}.failed.samples.jsonl").unlink(missing_ok=True)
    return record
