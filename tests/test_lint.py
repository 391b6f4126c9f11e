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


def test_every_rule_writes_its_commands_output_to_its_log() -> None:
    """The linter wants a `log:`; this also checks the shell command sends stdout and stderr
    there, so a failed job's reason is in results/<run>/logs/."""
    import re

    from workflow_rules import rule_blocks

    rules = 0
    for path, name, block in rule_blocks():
        assert "\n    log:\n" in block, f"{path.name}: rule {name} has no log"
        shell = block.split("\n    shell:\n", 1)
        assert len(shell) == 2, f"{path.name}: rule {name} has no shell command"
        command = re.match(r'(?:\s+".*"\n?)+', shell[1]).group(0).rstrip()
        assert command.endswith('> {log} 2>&1"'), (
            f"{path.name}: rule {name} does not send its output to {{log}}"
        )
        rules += 1
    assert rules >= 20
