"""The layering contracts of pyproject.toml ([tool.importlinter]) hold, and they catch a back-edge."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess:
    """lint-imports with pyproject.toml's contracts over the package found first under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=src,
        timeout=300,
    )


def test_the_layering_contracts_hold() -> None:
    proc = _lint(REPO / "src")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_a_back_edge_breaks_them(tmp_path: Path) -> None:
    """A stage importing another stage, and the core importing a stage, each fail the check."""
    copy = tmp_path / "src"
    shutil.copytree(REPO / "src" / "mixmerge", copy / "mixmerge")
    dpo = copy / "mixmerge" / "train" / "dpo.py"
    dpo.write_text(dpo.read_text() + "\nfrom mixmerge.report import scores  # noqa\n")
    config = copy / "mixmerge" / "config.py"
    config.write_text(config.read_text() + "\nimport mixmerge.evaluate.run  # noqa\n")
    proc = _lint(copy)
    assert proc.returncode != 0
    assert "Contracts: 0 kept, 2 broken." in proc.stdout
    assert "mixmerge.train.dpo -> mixmerge.report.scores" in proc.stdout
    assert "mixmerge.config -> mixmerge.evaluate.run" in proc.stdout
