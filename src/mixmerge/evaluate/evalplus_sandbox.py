"""The evalplus sandbox: ground truth and the checks of generated code, in a clean worker process.

Ground truth and checks run in a fresh interpreter (`python -m mixmerge.evaluate.evalplus_sandbox
PAYLOAD RESULT`) that imports neither torch nor the model, nor the rest of the evaluate stage:
evalplus's sandbox children fork from it, so their address-space limit is not eaten by the
model's mappings (a CUDA process reserves tens of GB of virtual memory), and no generated code
runs in the pipeline's own process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from mixmerge.io import atomic_file


def _ground_truth_one(dataset: str, problem: dict[str, Any]) -> dict[str, Any]:
    """evalplus.evaluate.get_groundtruth for one problem (canonical code: trusted)."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.gen.util import trusted_exec

    not_none = MBPP_OUTPUT_NOT_NONE_TASKS if dataset == "mbpp" else []
    code = problem["prompt"] + problem["canonical_solution"]
    oracle: dict[str, Any] = {}
    for part in ("base", "plus"):
        oracle[part], oracle[f"{part}_time"] = trusted_exec(
            code,
            problem[f"{part}_input"],
            problem["entry_point"],
            record_time=True,
            output_not_none=problem["entry_point"] in not_none,
        )
    return oracle


def _check_one(
    dataset: str,
    problem: dict[str, Any],
    solution: str,
    oracle: dict[str, Any],
    min_time_limit: float,
    gt_time_limit_factor: float,
) -> dict[str, str]:
    """evalplus.evaluate.check_correctness with fast_check: base, then plus inputs."""
    from evalplus.eval import untrusted_check

    out = {}
    for part in ("base", "plus"):
        status, _details = untrusted_check(
            dataset,
            solution,
            problem[f"{part}_input"],
            problem["entry_point"],
            expected=oracle[part],
            atol=problem["atol"],
            ref_time=oracle[f"{part}_time"],
            fast_check=True,
            min_time_limit=min_time_limit,
            gt_time_limit_factor=gt_time_limit_factor,
        )
        out[part] = status
    return out


def _sandbox_main(payload_path: str, result_path: str) -> None:
    """Worker entry point: ground truth for tasks without an oracle, then every check."""
    from concurrent.futures import ProcessPoolExecutor

    with open(payload_path, "rb") as handle:
        job = pickle.load(handle)
    dataset, problems, oracles = job["dataset"], job["problems"], dict(job["oracles"])
    for task_id, problem in problems.items():
        if task_id not in oracles:
            oracles[task_id] = _ground_truth_one(dataset, problem)
    verdicts: dict[str, dict[str, str]] = {}
    if job["solutions"]:
        with ProcessPoolExecutor(max_workers=job["parallel"]) as pool:  # as evalplus.evaluate
            futures = {
                task_id: pool.submit(
                    _check_one,
                    dataset,
                    problems[task_id],
                    solution,
                    oracles[task_id],
                    job["min_time_limit"],
                    job["gt_time_limit_factor"],
                )
                for task_id, solution in job["solutions"].items()
            }
            verdicts = {task_id: future.result() for task_id, future in futures.items()}
    with atomic_file(result_path, "wb") as handle:
        pickle.dump({"oracles": oracles, "verdicts": verdicts}, handle)


def run_sandbox(
    dataset: str,
    problems: dict[str, dict],
    solutions: dict[str, str],
    work_dir: Path,
    *,
    oracles: dict[str, dict] | None = None,
    min_time_limit: float,
    gt_time_limit_factor: float,
    max_memory_mb: int,
    parallel: int,
) -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
    """(oracles, {task_id: {"base": status, "plus": status}}), statuses pass | fail | timeout.

    Ground truth is computed for the problems missing from `oracles`; every solution is checked.
    """
    missing = [task_id for task_id in solutions if task_id not in problems]
    if missing:
        raise ValueError(f"{dataset}: solutions for unknown tasks {', '.join(missing[:5])}")
    work_dir.mkdir(parents=True, exist_ok=True)
    payload, result = work_dir / f"{dataset}-sandbox.pkl", work_dir / f"{dataset}-result.pkl"
    result.unlink(missing_ok=True)  # never read a stale result
    job = {
        "dataset": dataset,
        "problems": problems,
        "solutions": solutions,
        "oracles": {k: v for k, v in (oracles or {}).items() if k in problems},
        "min_time_limit": float(min_time_limit),
        "gt_time_limit_factor": float(gt_time_limit_factor),
        "parallel": int(parallel),
    }
    with atomic_file(payload, "wb") as handle:
        pickle.dump(job, handle)
    # Read by each sandbox child (evalplus's query_maximum_memory_bytes) for its RLIMIT_AS.
    env = {**os.environ, "EVALPLUS_MAX_MEMORY_BYTES": str(int(max_memory_mb) * 1024 * 1024)}
    # the worker imports this package even where it is on sys.path but not installed
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", __name__, str(payload), str(result)],
        env=env,
        stdout=subprocess.DEVNULL,  # evalplus and canonical solutions may print
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not result.is_file():
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise RuntimeError(
            f"{dataset}: evalplus sandbox worker failed (exit {proc.returncode}): "
            + " | ".join(tail)
        )
    with open(result, "rb") as handle:
        out = pickle.load(handle)
    return out["oracles"], out["verdicts"]


if __name__ == "__main__":
    _sandbox_main(sys.argv[1], sys.argv[2])
