"""perf/gpu_check.py, the one-run check of the GPU paths, runs end to end on CPU (two
merge methods), so it works the day a GPU machine is at hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "perf" / "gpu_check.py"),
            "--out", str(tmp_path),
            "--device", "cpu",
            "--scale", "0.01",
            "--methods", "linear,dare_ties",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {name: check["status"] for name, check in summary["checks"].items()}
    assert status == {
        "merge": "PASS",
        "generation": "PASS",
        "vllm": "SKIP",  # not installed here
        "dpo": "PASS",
        "multi-gpu": "SKIP",  # no GPUs
    }
    merge = summary["checks"]["merge"]["methods"]
    assert set(merge) == {"linear", "dare_ties"}
    assert all(row["repeat_bitwise_equal"] for row in merge.values())
    assert summary["checks"]["dpo"]["steps"] > 0
