"""Model-id pieces shared by the workflow and the CLI, so both spell them the same way."""

from __future__ import annotations


def _num(value: float) -> str:
    return f"{float(value):g}"


def candidate_name(beta: float, lr: float) -> str:
    """A DPO sweep candidate, e.g. `b0.1-lr5e-07`."""
    return f"b{_num(beta)}-lr{_num(lr)}"


def seed_variant(seed: int) -> str:
    return f"seed{int(seed)}"


def density_variant(density: float) -> str:
    return f"density{_num(density)}"


def sweep_candidates(train: dict, sweep: object = None) -> dict[str, tuple[float, float]]:
    """candidate name -> (beta, learning rate) of a DPO sweep grid.

    `sweep` is a {beta, learning_rate} grid (a list each, either may be left out), "none" (the
    train defaults only) or None (= train.sweep, the group models' grid).
    """
    grid = (train.get("sweep") or {}) if sweep in (None, "same") else sweep
    if grid == "none":
        grid = {}
    if not isinstance(grid, dict):
        raise ValueError(f"a sweep is same, none or a {{beta, learning_rate}} grid, got {grid!r}")
    return {
        candidate_name(beta, lr): (float(beta), float(lr))
        for beta in grid.get("beta", [train["beta"]])
        for lr in grid.get("learning_rate", [train["learning_rate"]])
    }
