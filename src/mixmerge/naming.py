"""Model-id pieces (and the sweep grid that names the DPO candidates), shared by the workflow and
the CLI so both spell them the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _num(value: float) -> str:
    return f"{float(value):g}"


def candidate_name(beta: float, lr: float) -> str:
    """A DPO sweep candidate, e.g. `b0.1-lr5e-07`."""
    return f"b{_num(beta)}-lr{_num(lr)}"


def seed_variant(seed: int) -> str:
    return f"seed{int(seed)}"


def density_variant(density: float) -> str:
    return f"density{_num(density)}"


@dataclass(frozen=True)
class SweepSettings:
    """A beta x learning-rate grid (`train.sweep`, `mixtures.sweep`); a side left out (None)
    takes the one train.beta / train.learning_rate."""

    beta: tuple[float, ...] | None = None
    learning_rate: tuple[float, ...] | None = None

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None) -> SweepSettings:
        block = block or {}
        return cls(
            beta=_floats(block.get("beta")), learning_rate=_floats(block.get("learning_rate"))
        )


def _floats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def sweep_candidates(
    grid: SweepSettings, beta: float, learning_rate: float
) -> dict[str, tuple[float, float]]:
    """candidate name -> (beta, learning rate) of a DPO sweep grid around one beta and lr."""
    return {
        candidate_name(b, lr): (float(b), float(lr))
        for b in grid.beta or (beta,)
        for lr in grid.learning_rate or (learning_rate,)
    }
