"""Fixtures of the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import fake_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A results/<run>-like folder with scores of every model kind and selection files."""
    return fake_run(tmp_path / "results" / "fake")
