"""Model-id pieces shared by the workflow and the CLI, so both spell them the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mixmerge.train.settings import SweepSettings, TrainSettings


def _num(value: float) -> str:
    return f"{float(value):g}"


def candidate_name(beta: float, lr: float) -> str:
    """A DPO sweep candidate, e.g. `b0.1-lr5e-07`."""
    return f"b{_num(beta)}-lr{_num(lr)}"


def seed_variant(seed: int) -> str:
    return f"seed{int(seed)}"


def density_variant(density: float) -> str:
    return f"density{_num(density)}"


def sweep_candidates(
    train: TrainSettings, sweep: SweepSettings | None = None
) -> dict[str, tuple[float, float]]:
    """candidate name -> (beta, learning rate) of a DPO sweep grid.

    `sweep` is a grid whose left-out sides take train.beta / train.learning_rate (an empty grid:
    the train settings only), or None for train.sweep (the group models' grid).
    """
    grid = train.sweep if sweep is None else sweep
    return {
        candidate_name(beta, lr): (float(beta), float(lr))
        for beta in grid.beta or (train.beta,)
        for lr in grid.learning_rate or (train.learning_rate,)
    }
