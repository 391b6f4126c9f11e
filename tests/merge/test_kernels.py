"""The fused loops (merge/kernels.py) give the torch path's bits: every sparsifier and the
sign election run both ways on bf16-shaped deltas full of ties at the cut."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from mixmerge.merge.base import intra_op_threads
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

    def stream_seed(self, j: int) -> int:
        return (1 << 62) + 12345 + j  # above 32 bits: torch seeds MT19937 with the low 32

    def uniform(self, j: int, shape: Sequence[int]) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(self.stream_seed(j)))


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


@pytest.mark.parametrize("n", [1, 63, 64, 65, 64 * 97 + 31])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_abs_bracket_gathers_in_order(n: int, dtype: type) -> None:
    """The count below the bracket and the gather inside it (its 64-entry bit masks and the
    tail), against numpy's compress: values, order, the bounds' ties, -0.0, and an overflow
    that still counts every entry inside."""
    from mixmerge.merge import kernels

    base, (ft,) = bf16_deltas(n, 1, seed=n)
    x = (ft - base).numpy().astype(dtype)
    a = np.abs(x)
    lo, hi = np.quantile(a, [0.3, 0.6]).astype(dtype) if n > 1 else (a[0], a[0])
    x[:: max(n // 5, 1)] = -lo  # ties at both bounds, negative
    a = np.abs(x)
    expected = np.compress((a >= lo) & (a <= hi), a)
    for cap in (len(expected) + 3, max(len(expected) // 2, 0)):
        inside = np.full(cap, -1.0, dtype=dtype)
        below, n_inside = kernels.abs_bracket(x, lo, hi, inside)
        assert (below, n_inside) == (np.count_nonzero(a < lo), len(expected))
        kept = min(cap, n_inside)
        assert np.array_equal(inside[:kept], expected[:kept])
        assert (inside[kept:] == -1.0).all()


@pytest.mark.parametrize("n", [1, 623, 624, 625, 100_003])
def test_uniform_fill_is_torch_rand(n: int) -> None:
    from mixmerge.merge import kernels

    for seed in (0, 5489, (1 << 32) + 7, (1 << 63) - 1):
        out = np.empty(n, dtype=np.float32)
        kernels.uniform_fill(out, seed)
        ref = torch.rand(n, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.from_numpy(out).view(torch.int32), ref.view(torch.int32))


def test_context_draws_are_its_generators() -> None:
    from mixmerge.merge.base import TensorContext

    ctx = TensorContext(
        name="model.layers.3.mlp.up_proj.weight", tensors=[torch.zeros(3)] * 2,
        model_params=[{}, {}], params={}, base=torch.zeros(3), model_indices=[0, 4],
        model_labels=["a", "b"], seed=11, device=torch.device("cpu"), dtype=torch.float32,
    )
    for j in (0, 1):
        ref = torch.rand((37, 29), generator=ctx.generator(j))
        assert torch.equal(ctx.uniform(j, (37, 29)).view(torch.int32), ref.view(torch.int32))


@pytest.mark.parametrize("mode", ["l1", "inverse_density"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows, cols", [(100, 200), (300, 1000)])
def test_random_and_rank_drops(
    monkeypatch: pytest.MonkeyPatch, mode: str, threads: int, rows: int, cols: int
) -> None:
    """The keep probability is a draw d of the stream plus 2⁻³⁰: float32(p) is d itself, so
    `d < p` drops it as torch does (a float32 compare), where a float64 compare keeps it.
    On one thread the fused loop's L1 norms stand in for torch's (above its 32768-entry
    grain too); on two, torch's are taken."""
    with intra_op_threads(threads):
        drops_both_ways(monkeypatch, rows, cols, mode)


def drops_both_ways(monkeypatch: pytest.MonkeyPatch, rows: int, cols: int, mode: str) -> None:
    base, fts = bf16_deltas(rows * cols, 1)
    ctx = Ctx(base, fts, [])
    delta = (fts[0] - base).view(rows, cols)
    at = int(delta.view(-1)[4321:].nonzero()[0]) + 4321  # an entry δ ≠ 0
    d = float(ctx.uniform(0, delta.shape).view(-1)[at])
    p = d + 2.0**-30
    assert np.float32(p) == d < p
    both_ways(monkeypatch, lambda: gta.random_drop(ctx, 0, delta.clone(), p, True, mode))
    assert gta.random_drop(ctx, 0, delta.clone(), p, False, mode).view(-1)[at] == 0
    both_ways(
        monkeypatch,
        lambda: gta.della_magprune(ctx, 0, delta.clone(), 0.7, 0.1, True, mode),
    )


@pytest.mark.parametrize("shape", [(5000,), (37, 211)])
@pytest.mark.parametrize("mode", ["l1", "inverse_density"])
def test_della_row_blocks(monkeypatch: pytest.MonkeyPatch, shape: tuple, mode: str) -> None:
    """Rows ranked a block of a few rows at a time (the random stream and the L1 sums carry
    over from block to block), and a vector as one row."""
    monkeypatch.setattr(gta, "CHUNK", 1000)
    base, fts = bf16_deltas(int(np.prod(shape)), 1, seed=5)
    ctx = Ctx(base, fts, [])
    delta = (fts[0] - base).view(shape)
    with intra_op_threads(1):
        both_ways(
            monkeypatch,
            lambda: gta.della_magprune(ctx, 0, delta.clone(), 0.4, 0.15, True, mode),
        )


@pytest.mark.parametrize("cols", [2, 3, 7, 1000])
def test_della_bucketed_mask_is_the_sorted_ranks(cols: int) -> None:
    """The mask bounded by each row's histogram, against the rows' sorted keys: bf16 ties,
    exact zeros, one value repeated across a row (every draw between the table's ends needs
    the exact rank), a row spanning 30 binades and ±inf (most of it in the lowest bucket),
    a flat table (epsilon 0), and the random stream and L1 sums carried from row to row."""
    from mixmerge.merge import kernels

    rows = 4000 // cols + 4
    base, (ft,) = bf16_deltas(rows * cols, 1, seed=cols)
    x = (ft - base).view(rows, cols).numpy().copy()
    x[1::5, ::3] = 0.0
    x[2::5] = np.float32(-0.5)
    x[3::5] *= np.logspace(-15, 15, cols, dtype=np.float32)
    x[4::5, 0], x[4::5, -1] = np.inf, -np.inf
    for density, epsilon in ((0.5, 0.15), (0.3, 0.0), (0.8, 0.19)):
        table = gta._della_table(cols, density, epsilon, torch.float32).numpy()
        seed = cols * 7 + int(density * 10)
        expected, expected_sums = x.copy(), np.zeros(2, dtype=np.float32)
        keys = np.empty(x.shape, dtype=np.int64)
        kernels.row_rank_keys(expected, keys)
        keys.sort(axis=1)
        stream = kernels.mt_stream(seed)
        kernels.ranked_keep_below(expected, keys, table, stream, False, expected_sums)
        got, sums = x.copy(), np.zeros(2, dtype=np.float32)
        kernels.bucketed_keep_below(got, table, kernels.mt_stream(seed), sums)
        assert got.tobytes() == expected.tobytes()
        assert sums.tobytes() == expected_sums.tobytes()


@pytest.mark.parametrize("method", ["ties", "dare_ties", "breadcrumbs_ties", "della", "sce"])
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
        if method == "sce":  # its erase and combine, after its variance mask and without
            ctx.params["select_topk"] = 0.5 if normalize else 1.0
        return METHODS[method]().merge(ctx)

    both_ways(monkeypatch, run)


def test_bf16_task_vector_formation() -> None:
    """Widening bf16 bytes by a shift gives torch's `.float()` bits (zeros of both signs,
    subnormals included), with or without the base subtracted, and a NaN/Inf input is
    reported."""
    from mixmerge.merge import kernels

    gen = torch.Generator().manual_seed(3)
    stored = torch.randn(10_007, generator=gen).bfloat16()
    stored[:3] = torch.tensor([0.0, -0.0, 1e-40]).bfloat16()
    base = torch.randn(10_007, generator=gen)
    out = torch.empty(10_007)
    raw = stored.view(torch.int16).numpy()
    assert kernels.widen_bf16_if_finite(raw, out.numpy(), base.numpy(), True)
    assert torch.equal(out.view(torch.int32), (stored.float() - base).view(torch.int32))
    assert kernels.widen_bf16_if_finite(raw, out.numpy(), base.numpy(), False)
    assert torch.equal(out.view(torch.int32), stored.float().view(torch.int32))
    for bad in (float("nan"), float("inf"), float("-inf")):
        broken = stored.clone()
        broken[9_999] = bad
        raw = broken.view(torch.int16).numpy()
        assert not kernels.widen_bf16_if_finite(raw, out.numpy(), base.numpy(), True)


def test_bf16_output() -> None:
    """float32 → bf16 rounds to nearest even as torch does (ties, zeros, subnormals, the
    largest finite values); NaN/Inf, and a value that rounds past bf16's largest, are
    reported."""
    from mixmerge.merge import kernels

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(100_003, generator=gen) * torch.logspace(-40, 38, 100_003)
    x[:10] = torch.tensor(
        [0.0, -0.0, 1e-45, -1e-40, 3.38e38, -3.38e38, 1.0, 1.00390625, 1.0078125, 1.01171875]
    )
    out = torch.empty(x.shape, dtype=torch.bfloat16)
    assert kernels.narrow_bf16_if_finite(x.numpy(), out.view(torch.int16).numpy())
    assert torch.equal(out.view(torch.int16), x.bfloat16().view(torch.int16))
    for bad in (float("nan"), float("inf"), -3.4e38):
        broken = x.clone()
        broken[777] = bad
        assert not torch.isfinite(broken.bfloat16()).all()
        assert not kernels.narrow_bf16_if_finite(broken.numpy(), out.view(torch.int16).numpy())
