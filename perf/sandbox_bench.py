"""What the evalplus boundary costs: the same checks with `sandbox: none` and with each boundary.

    .venv/bin/python perf/sandbox_bench.py                      # 40 items, 3 rounds
    .venv/bin/python perf/sandbox_bench.py --items 164 --rounds 5

Each round runs `run_sandbox` (one worker: ground truth, then every check) on the canonical
solutions of `--items` tiny HumanEval+ fixture problems, once per sandbox, interleaved. Prints
the boundary's one-off probe time, the median wall time per run and per item, and the overhead
against `none` (the same worker without a boundary). Scores must be identical (all pass).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mixmerge.evaluate import evalplus_sandbox, isolation
from mixmerge.evaluate.evalplus_tasks import load_problems
from mixmerge.tiny.evalplus_fixtures import write_evalplus_fixtures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        return bench(args, Path(tmp))


def bench(args: argparse.Namespace, work: Path) -> int:
    path = write_evalplus_fixtures(work / "fixtures", n_items=args.items, seed=0)["humaneval_plus"]
    problems, _, _ = load_problems("humaneval_plus", str(path))
    solutions = {k: p["prompt"] + p["canonical_solution"] for k, p in problems.items()}
    kinds = ["none"]
    for kind in isolation.KINDS:
        start = time.perf_counter()
        why = isolation.probe(kind)
        print(f"probe {kind}: {'ok' if why is None else why} ({time.perf_counter() - start:.3f} s)")
        if why is None:
            kinds.append(kind)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            start = time.perf_counter()
            _, verdicts = evalplus_sandbox.run_sandbox(
                "humaneval",
                problems,
                solutions,
                work / "run",
                min_time_limit=1.0,
                gt_time_limit_factor=4.0,
                max_memory_mb=4096,
                parallel=args.parallel,
                sandbox=kind,
            )
            times[kind].append(time.perf_counter() - start)
            if any(v != {"base": "pass", "plus": "pass"} for v in verdicts.values()):
                print(f"{kind}: a canonical solution did not pass", file=sys.stderr)
                return 1
    base = statistics.median(times["none"])
    print(f"{args.items} items, parallel {args.parallel}, median of {args.rounds} runs:")
    for kind in kinds:
        run = statistics.median(times[kind])
        print(
            f"  {kind:8s} {run:6.3f} s per run, {1000 * run / args.items:6.2f} ms per item, "
            f"overhead {run - base:+6.3f} s per run ({1000 * (run - base) / args.items:+6.2f} "
            "ms per item)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
