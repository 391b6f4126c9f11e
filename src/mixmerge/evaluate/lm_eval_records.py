"""An lm-eval run's results read into mixmerge's score record and per-document samples.

The score is lm-eval's `<metric>,<filter>` x 100; each document scored under that filter becomes
one sample with its metric value (a 0/1 hit, or a share such as TruthfulQA MC2's true-answer
mass), which the report's bootstrap resamples.
"""

from __future__ import annotations

import math as _math
from typing import Any


def score_record(
    samples: list[dict[str, Any]],
    benchmark: str,
    task_name: str,
    results: dict[str, Any],
    metric: str,
    filter_name: str,
    num_fewshot: int,
    version: str,
) -> dict[str, Any]:
    """The score record of one lm-eval run; one record per scored document goes to `samples`."""
    task_results = results["results"].get(task_name, {})
    key = f"{metric},{filter_name}"
    if key not in task_results:
        avail = sorted(k for k in task_results if "," in k and "_stderr" not in k)
        raise ValueError(
            f"{benchmark}: lm-eval task {task_name} has no metric {key!r} (available: {avail})"
        )
    stderr = task_results.get(f"{metric}_stderr,{filter_name}")

    leaves = _leaf_tasks(task_name, results.get("group_subtasks", {}))
    n = 0
    for leaf in leaves:
        rows = [
            s for s in results.get("samples", {}).get(leaf, []) if s.get("filter") == filter_name
        ]
        n += len(rows)
        for sample in rows:
            samples.append(_sample_record(benchmark, leaf, sample, metric))
    if n == 0:  # no samples logged: fall back to lm-eval's own counts
        n = sum(
            int(results.get("n-samples", {}).get(leaf, {}).get("effective", 0)) for leaf in leaves
        )

    all_metrics = {
        k: _number(v) for k, v in task_results.items() if "," in k and "_stderr" not in k
    }
    return {
        "benchmark": benchmark,
        "score": 100.0 * float(task_results[key]),
        "n": n,
        "metric": key,
        "num_fewshot": num_fewshot,
        "task": task_name,
        "lm_eval_version": version,
        "stderr": None if _number(stderr) is None else 100.0 * float(stderr),
        "all_metrics": all_metrics,
    }


def request_count(results: dict[str, Any], task_name: str, filter_name: str) -> int:
    """How many requests the logged samples made (each document once, under the scored filter)."""
    return sum(
        len(sample.get("arguments") or [])
        for leaf in _leaf_tasks(task_name, results.get("group_subtasks", {}))
        for sample in results.get("samples", {}).get(leaf, [])
        if sample.get("filter") == filter_name
    )


def _leaf_tasks(name: str, group_subtasks: dict[str, list[str]]) -> list[str]:
    children = group_subtasks.get(name)
    if not children:
        return [name]
    return [leaf for child in children for leaf in _leaf_tasks(child, group_subtasks)]


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if _math.isnan(value) else value


def _sample_record(
    benchmark: str, task: str, sample: dict[str, Any], metric: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "benchmark": benchmark,
        "task": task,
        "doc_id": sample.get("doc_id"),
        "target": sample.get("target"),
        "filter": sample.get("filter"),
    }
    filtered = sample.get("filtered_resps") or []
    resps = sample.get("resps") or []
    if filtered and isinstance(filtered[0], (list, tuple)):  # multiple choice: (loglik, is_greedy)
        record["logliks"] = [float(choice[0]) for choice in filtered]
        record["argmax_loglik"] = max(range(len(filtered)), key=lambda i: filtered[i][0])
    else:  # generation: raw reply and the filtered (extracted) answer
        record["response"] = resps[0][0] if resps and resps[0] else None
        record["answer"] = filtered[0] if filtered else None
    for name in sample.get("metrics", []):
        record[name] = _number(sample.get(name))
    value = _number(sample.get(metric))
    # the item's metric value (a 0/1 hit, or a share such as TruthfulQA MC2's true-answer mass)
    record["value"] = value
    record["correct"] = None if value is None else value >= 1.0
    return record
