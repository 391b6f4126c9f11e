"""The sparsifiers' exact selection (the float32 radix select, numpy's introselect or torch's
top-k, the sampled bracket on large tensors, int64-key row sorts) against a stable argsort, on
values full of ties."""

from __future__ import annotations

import pytest
import torch

from mixmerge.merge.methods.gta import (
    BRACKET_MIN,
    CHUNK,
    RADIX_MIN,
    _host,
    _kth_bracketed,
    by_row_rank,
    largest_mask,
    smallest_mask,
    upper_counts,
)


def tied(n: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """|x| rounded to 64 levels plus zeros: most values repeat many times."""
    gen = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, generator=gen).abs() * 16).round() / 16
    a[torch.rand(n, generator=gen) < 0.1] = 0
    return a.to(dtype)


def stable_first(a: torch.Tensor, k: int, descending: bool) -> torch.Tensor:
    mask = torch.zeros(a.numel(), dtype=torch.bool)
    mask[torch.argsort(a.float(), descending=descending, stable=True)[:k]] = True
    return mask


@pytest.mark.parametrize(
    "n, dtype, shift",
    [
        (1000, torch.float32, 0.0),  # numpy's partition
        (1000, torch.float16, 0.0),  # torch's top-k (numpy cannot select half floats)
        (RADIX_MIN + 77, torch.float32, 0.0),  # the radix select
        (BRACKET_MIN - 5, torch.float32, 0.0),  # radix, the largest it takes
        (CHUNK + 4099, torch.float32, 0.0),  # the bracket, tied entries taken over two pieces
        (RADIX_MIN + 77, torch.float32, 1.0),  # negative values: partition instead
        (RADIX_MIN + 77, torch.float32, -0.0),  # -0.0 has the sign bit set: partition too
        (BRACKET_MIN + 4099, torch.float64, 0.0),  # the bracket, then numpy's partition
    ],
)
def test_masks_are_the_stable_sorts_first_k(n: int, dtype: torch.dtype, shift: float) -> None:
    a = tied(n, dtype)
    if shift:
        a -= shift
    elif str(shift) == "-0.0":
        a[a == 0] = -0.0
    counts = upper_counts(a)  # the radix select's first pass, shared by several cuts
    radix = dtype == torch.float32 and RADIX_MIN <= n < BRACKET_MIN and str(shift) == "0.0"
    assert (counts is not None) == radix
    for k in (0, 1, n // 10, n // 2, n - 3, n):
        assert torch.equal(largest_mask(a, k), stable_first(a, k, descending=True)), k
        want = stable_first(a, k, descending=False)
        assert torch.equal(smallest_mask(a, k), want), k
        assert torch.equal(smallest_mask(a, k, counts), want), k


def test_a_missed_bracket_falls_back_to_an_exact_selection() -> None:
    """Every sampled position holds a zero and the rest are large: the sample's bracket
    misses the median, and the radix select still finds it."""
    n = 2 * BRACKET_MIN
    a = tied(n) + 1
    a[:: n // (1 << 16)] = 0
    assert _kth_bracketed(_host(a), n // 2) is None
    for k in (n // 2, n // 3):
        assert torch.equal(largest_mask(a, k), stable_first(a, k, descending=True)), k
        assert torch.equal(smallest_mask(a, k), stable_first(a, k, descending=False)), k


@pytest.mark.parametrize("shape", [(7, 1), (5, 33), (64, 4096)])
def test_row_ranks_are_a_stable_argsorts(shape: tuple[int, int]) -> None:
    mag = tied(shape[0] * shape[1], seed=1).view(shape)
    order = torch.argsort(mag, dim=1, stable=True)
    want = torch.empty_like(order).scatter_(1, order, torch.arange(shape[1]).expand_as(order))
    ranks = torch.arange(shape[1])  # table[rank] = rank
    assert torch.equal(by_row_rank(mag, ranks), want)
    assert torch.equal(by_row_rank(mag.double(), ranks), want)  # torch's own path
