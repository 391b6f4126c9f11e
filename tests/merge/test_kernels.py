"""The fused loops (merge/kernels.py) give the torch path's bits: every sparsifier and the
sign election run both ways on bf16-shaped deltas full of ties at the cut."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from mixmerge.merge.methods import gta
from mixmerge.merge.registry import METHODS

N_LARGE = gta.BRACKET_MIN + 4099  # the fused bracket; below it |δ| is formed and selected


def bf16_deltas(n: int, t: int, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A float32 base and t fine-tunes, both rounded to bf16: their differences repeat a few
    values many times (a fifth of the entries at the median magnitude), with exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, generator=gen).bfloat16().float()
    fts = [(base + 0.01 * torch.randn(n, generator=gen)).bfloat16().float() for _ in range(t)]
    return base, fts


class Ctx:
    """What GeneralizedTaskArithmetic.merge reads of a TensorContext, on one thread."""

    def __init__(self, base: torch.Tensor, fts: Sequence[torch.Tensor], mp: list[dict]) -> None:
        self.base, self.tensors, self.model_params = base.clone(), list(fts), mp
        self.params: dict[str, Any] = {}
        self.device = torch.device("cpu")

    def task_vectors(self) -> list[torch.Tensor]:
        return [f - self.base for f in self.tensors]

    def map(self, fn: Callable, items: Any) -> list:
        return [fn(i) for i in items]

    def mutable_base(self) -> torch.Tensor:
        return self.base

    def uniform(self, j: int, shape: Sequence[int]) -> torch.Tensor:
        draws = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(j))
        draws.view(-1)[::7] = torch.tensor(0.7, dtype=torch.float32)  # float32(density) < 0.7
        return draws


def both_ways(monkeypatch: pytest.MonkeyPatch, run: Callable[[], torch.Tensor]) -> None:
    fused = run()
    with monkeypatch.context() as m:
        m.setattr(gta, "fusable", lambda *tensors: False)
        reference = run()
    assert fused.dtype == reference.dtype
    assert torch.equal(fused.view(torch.int32 if fused.dtype == torch.float32 else torch.int64),
                       reference.view(torch.int32 if reference.dtype == torch.float32 else torch.int64))


@pytest.mark.parametrize("n", [5000, N_LARGE])
@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("rescale", [False, True])
def test_magnitude(monkeypatch: pytest.MonkeyPatch, n: int, density: float, rescale: bool) -> None:
    base, (ft,) = bf16_deltas(n, 1)
    both_ways(monkeypatch, lambda: gta.magnitude(ft - base, density, rescale))


@pytest.mark.parametrize("n", [5000, N_LARGE])
@pytest.mark.parametrize("density, gamma", [(0.5, 0.01), (0.9, 0.0), (0.5, 0.6), (0.2, 0.3)])
def test_magnitude_outliers(
    monkeypatch: pytest.MonkeyPatch, n: int, density: float, gamma: float
) -> None:
    base, (ft,) = bf16_deltas(n, 1)
    both_ways(monkeypatch, lambda: gta.magnitude_outliers(ft - base, density, gamma, True))


def test_float64_and_the_large_bracket(monkeypatch: pytest.MonkeyPatch) -> None:
    base, (ft,) = bf16_deltas(N_LARGE, 1)
    both_ways(monkeypatch, lambda: gta.magnitude((ft - base).double(), 0.3, True))


@pytest.mark.parametrize("mode", ["l1", "inverse_density"])
def test_random_and_rank_drops(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The draws hold float32(0.7) itself, which `draws < 0.7` drops: torch compares in float32."""
    base, fts = bf16_deltas(20_000, 1)
    ctx = Ctx(base, fts, [])
    delta = (fts[0] - base).view(100, 200)
    both_ways(monkeypatch, lambda: gta.random_drop(ctx, 0, delta.clone(), 0.7, True, mode))
    both_ways(
        monkeypatch,
        lambda: gta.della_magprune(ctx, 0, delta.clone(), 0.7, 0.1, True, mode),
    )


@pytest.mark.parametrize("method", ["ties", "dare_ties", "breadcrumbs_ties", "della"])
@pytest.mark.parametrize("normalize, lam", [(True, 1.0), (False, 0.7)])
def test_sign_election(
    monkeypatch: pytest.MonkeyPatch, method: str, normalize: bool, lam: float
) -> None:
    """Weights of both signs and one of 1 (the torch path skips x·1), exact zeros, and
    entries where no model agrees (the divisor guard)."""
    base, fts = bf16_deltas(gta.COMBINE_CHUNK + 999, 4, seed=1)
    fts[2] = base.clone()  # a zero task vector: its entries agree with neither sign
    weights = [0.3, -0.45, 1.0, 0.61]
    extra = {"gamma": 0.01} if method.startswith("breadcrumbs") else {}
    extra |= {"epsilon": 0.1} if method == "della" else {}
    mp = [{"weight": w, "density": 0.6, **extra} for w in weights]

    def run() -> torch.Tensor:
        ctx = Ctx(base, fts, mp)
        params = {p.name: p.default for p in METHODS[method].global_params}
        ctx.params = params | {"normalize": normalize, "lambda": lam}
        return METHODS[method]().merge(ctx)

    both_ways(monkeypatch, run)
