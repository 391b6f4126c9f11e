"""`snakemake --lint` is clean on the default (tiny) config: every rule keeps Snakemake's best
practices (log, conda env, no workflow globals in shell commands, ...)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_snakemake_lint_is_clean(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "--lint",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, f"snakemake --lint:\n{out}"
