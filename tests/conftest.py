"""Shared fixtures: a tiny model built once per test session, and the upstream samples folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = REPO.parent / "shared" / "upstream-samples"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mixmerge.tiny import text
    from mixmerge.tiny.model import build_tiny_model

    rng = random.Random(0)
    corpus = [f"{text.paragraph(rng)} {text.question(rng)} 12 + 30 = 42." for _ in range(300)]
    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(out, corpus, seed=0)
    return out


@pytest.fixture(scope="session")
def upstream() -> Path:
    """Real upstream benchmark rows (../shared/upstream-samples); skip when absent."""
    if not UPSTREAM.is_dir():
        pytest.skip("../shared/upstream-samples not present")
    return UPSTREAM


@pytest.fixture(scope="session", autouse=True)
def _slurm_slice_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
):
    """When the session includes the SLURM slice (tests/test_slurm.py), start it first: it
    mostly waits on SLURM's status polls, so the other tests run meanwhile."""
    wanted = any(
        item.nodeid.startswith("tests/test_slurm.py") and "runs" in item.fixturenames
        for item in request.session.items
    )
    if wanted:
        import test_slurm
    if not wanted or not test_slurm.can_run_slurm():
        yield
        return
    test_slurm.BACKGROUND = test_slurm.SliceInBackground(tmp_path_factory.mktemp("slurm-slice"))
    try:
        yield
    finally:
        test_slurm.BACKGROUND.close()
        test_slurm.BACKGROUND = None
