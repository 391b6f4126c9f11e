"""The evalplus sandbox: ground truth and the checks of generated code, in a clean worker process.

Ground truth and checks run in a fresh interpreter (`python -m mixmerge.evaluate.evalplus_sandbox`,
the job pickled on its stdin, the result pickled on its stdout) that imports neither torch nor
the model, nor the rest of the evaluate stage: evalplus's sandbox children fork from it, so
their address-space limit is not eaten by the model's mappings (a CUDA process reserves tens of
GB of virtual memory), and no generated code runs in the pipeline's own process. The worker runs
inside the OS-level boundary of `mixmerge.evaluate.isolation` (`evaluate.sandbox`), with a clean
environment.

Beyond evalplus (which leaves a check's stray processes running and lets a failed fork crash the
run): each pool process is a child subreaper and kills what a check left behind after it; a check
that cannot fork because a concurrent one filled the process limit is retried; the pool
processes' stdout and stderr go to /dev/null and they never hold the result pipe.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mixmerge.evaluate import isolation

FORK_RETRY_S = 120.0  # longer than any check (evalplus caps one at 60 s + 1): its strays are gone


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


def _children() -> list[int]:
    """This process's child pids (/proc/self/task/*/children, else a scan of /proc)."""
    tasks = Path("/proc/self/task")
    try:
        return [
            int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()
        ]
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        pass
    me, kids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                kids.append(int(entry.name))
    return kids


def _reap_strays() -> None:
    """Kill what the last check left: as subreaper, its orphans are this process's children."""
    import multiprocessing

    multiprocessing.active_children()  # reaps the check process itself, as evalplus does later
    for _ in range(1000):  # a stray may fork while dying: its children come up here next round
        pids = _children()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _pool_init(result_fd: int) -> None:
    """Each pool process: no result pipe, output to /dev/null, subreaper of its checks' strays."""
    import ctypes

    os.close(result_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


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
        deadline = time.monotonic() + FORK_RETRY_S
        while True:
            try:
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
                break
            except OSError as err:  # fork: EAGAIN while another check's strays fill the limit
                _reap_strays()
                if err.errno != errno.EAGAIN or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        _reap_strays()
        out[part] = status
    return out


def _self_test(min_time_limit: float) -> None:
    """A trivial solution must pass: a boundary that broke evalplus's checks (no writable /tmp or
    /dev/shm, say) would otherwise read as every item timing out, a silent 0."""
    from evalplus.eval import PASS, untrusted_check

    status, _ = untrusted_check(
        "humaneval", "def f(x):\n    return x\n", [[1]], "f", [1], 0, [0.0], True, min_time_limit
    )
    if status != PASS:
        sys.exit(f"evalplus's check of a trivial solution gave {status!r} in this sandbox")


def _sandbox_main() -> None:
    """Worker entry point: ground truth for tasks without an oracle, then every check."""
    from concurrent.futures import ProcessPoolExecutor

    job = pickle.load(sys.stdin.buffer)
    result_fd = os.dup(1)  # the result goes here; fd 1 goes to /dev/null (solutions may print)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if job["max_processes"]:  # counted per user (per user namespace), threads included
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        limit = int(job["max_processes"])
        limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    _self_test(job["min_time_limit"])
    dataset, problems = job["dataset"], job["problems"]
    # oracles cross the boundary as opaque pickles: only this side ever unpickles them
    oracles = {k: pickle.loads(v) if isinstance(v, bytes) else v for k, v in job["oracles"].items()}
    for task_id, problem in problems.items():
        if task_id not in oracles:
            oracles[task_id] = _ground_truth_one(dataset, problem)
    verdicts: dict[str, dict[str, str]] = {}
    if job["solutions"]:
        with ProcessPoolExecutor(  # as evalplus.evaluate
            max_workers=job["parallel"], initializer=_pool_init, initargs=(result_fd,)
        ) as pool:
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
    packed = {k: base64.b64encode(pickle.dumps(v)).decode() for k, v in oracles.items()}
    with os.fdopen(result_fd, "w") as handle:  # JSON: the pipeline never unpickles sandbox output
        json.dump({"oracles": packed, "verdicts": verdicts}, handle)


def default_max_processes(parallel: int) -> int:
    """RLIMIT_NPROC inside a boundary: the worker and its pool need about 4 + 2 x parallel."""
    return 128 + 8 * int(parallel)


def run_sandbox(
    dataset: str,
    problems: dict[str, dict],
    solutions: dict[str, str],
    work_dir: Path,
    *,
    oracles: dict[str, Any] | None = None,
    min_time_limit: float,
    gt_time_limit_factor: float,
    max_memory_mb: int,
    parallel: int,
    sandbox: str = "auto",
    max_processes: int | None = None,
) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """(oracles, {task_id: {"base": status, "plus": status}}), statuses pass | fail | timeout.

    Oracles are opaque (pickled ground truth, unpickled only inside the worker; `oracles` may also
    hold evalplus's dicts, from older caches). Ground truth is computed for the problems missing from `oracles`; every solution is checked.
    `sandbox`: bwrap | unshare | none | auto (`isolation.choose`); `work_dir` is hidden from the
    code too. `max_processes`: RLIMIT_NPROC inside a boundary (default_max_processes).
    """
    missing = [task_id for task_id in solutions if task_id not in problems]
    if missing:
        raise ValueError(f"{dataset}: solutions for unknown tasks {', '.join(missing[:5])}")
    kind = isolation.choose(sandbox)
    job = {
        "dataset": dataset,
        "problems": problems,
        "solutions": solutions,
        "oracles": {k: v for k, v in (oracles or {}).items() if k in problems},
        "min_time_limit": float(min_time_limit),
        "gt_time_limit_factor": float(gt_time_limit_factor),
        "parallel": int(parallel),
        "max_processes": None
        if kind == "none"
        else int(max_processes or default_max_processes(parallel)),
    }
    # the worker imports this package even where it is on sys.path but not installed
    paths = [isolation.SRC, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    extra = {  # read by each sandbox child (evalplus's query_maximum_memory_bytes) for RLIMIT_AS
        "EVALPLUS_MAX_MEMORY_BYTES": str(int(max_memory_mb) * 1024 * 1024),
        "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in paths if p),
    }
    inner = [sys.executable, "-m", __name__]
    argv = isolation.command(kind, inner, isolation.layout([work_dir]) if kind != "none" else None)
    proc = subprocess.run(
        argv,
        input=pickle.dumps(job),
        capture_output=True,
        env=isolation.environment(extra, sandboxed=kind != "none"),
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"{dataset}: evalplus sandbox worker failed ({kind}, exit {proc.returncode}): "
            + " | ".join(tail)
        )
    return _read_result(dataset, proc.stdout, solutions)


def _read_result(
    dataset: str, data: bytes, solutions: dict[str, str]
) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """The worker's JSON, checked: a verdict per solution, each part pass | fail | timeout."""
    try:
        out = json.loads(data)
        oracles = {str(k): base64.b64decode(v, validate=True) for k, v in out["oracles"].items()}
        verdicts = {
            k: {part: str(v[part]) for part in ("base", "plus")} for k, v in out["verdicts"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise RuntimeError(f"{dataset}: unreadable evalplus sandbox result ({err})") from None
    bad = [k for k, v in verdicts.items() if not set(v.values()) <= {"pass", "fail", "timeout"}]
    if set(verdicts) != set(solutions) or bad:
        raise RuntimeError(f"{dataset}: evalplus sandbox result does not match its job")
    return oracles, verdicts


if __name__ == "__main__":
    _sandbox_main()
