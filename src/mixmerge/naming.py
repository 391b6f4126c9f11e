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
