"""Model Stock against hand-computed angles (MergeKit merge_methods/model_stock.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from merge_helpers import merge_states

from mixmerge.merge import MergeError


def t_of(cos: float, n: int) -> float:
    return n * cos / (1 + (n - 1) * cos)


def test_model_stock_tensor_wise(tmp_path: Path) -> None:
    w0 = torch.tensor([1.0, 2.0, 3.0])
    offsets = [
        torch.tensor([1.0, 0.0, 0.0]),
        torch.tensor([0.0, 1.0, 0.0]),
        torch.tensor([1.0, 1.0, 0.0]),
    ]
    # pairwise cosines: (1,2) = 0, (1,3) = (2,3) = 1/√2 -> mean √2/3
    cos = (0 + 2 / math.sqrt(2)) / 3
    t = t_of(cos, 3)
    avg = w0 + sum(offsets) / 3
    got = merge_states(tmp_path, "model_stock", {"w": w0}, [{"w": w0 + o} for o in offsets])
    torch.testing.assert_close(got["w"], t * avg + (1 - t) * w0)


def test_model_stock_orthogonal_and_parallel(tmp_path: Path) -> None:
    w0 = torch.zeros(2)
    # orthogonal offsets: cos 0 -> t 0 -> the base
    got = merge_states(
        tmp_path,
        "model_stock",
        {"w": w0},
        [{"w": torch.tensor([1.0, 0])}, {"w": torch.tensor([0, 2.0])}],
    )
    torch.testing.assert_close(got["w"], w0)
    # parallel offsets: cos 1 -> t 1 -> the average
    got = merge_states(
        tmp_path,
        "model_stock",
        {"w": w0},
        [{"w": torch.tensor([1.0, 1.0])}, {"w": torch.tensor([3.0, 3.0])}],
        tag="par",
    )
    torch.testing.assert_close(got["w"], torch.tensor([2.0, 2.0]))


def test_model_stock_filter_wise(tmp_path: Path) -> None:
    w0 = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # row 0: offsets (1,0) and (0,1) -> cos 0 -> t 0; row 1: (1,1) and (2,2) -> cos 1 -> t 1
    a = w0 + torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = w0 + torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    bias0 = torch.tensor([0.5, 0.5])
    bias = [bias0 + torch.tensor([1.0, 0.0]), bias0 + torch.tensor([1.0, 1.0])]
    got = merge_states(
        tmp_path,
        "model_stock",
        {"w": w0, "b": bias0},
        [{"w": a, "b": bias[0]}, {"w": b, "b": bias[1]}],
        params={"filter_wise": True},
    )
    torch.testing.assert_close(got["w"], torch.tensor([[1.0, 1.0], [1.5, 1.5]]))
    # a 1-D tensor is one row: cos((1,0),(1,1)) = 1/√2
    t = t_of(1 / math.sqrt(2), 2)
    torch.testing.assert_close(got["b"], t * (bias[0] + bias[1]) / 2 + (1 - t) * bias0)
    # tensor-wise on the same inputs: one angle for the whole matrix
    flat = merge_states(tmp_path, "model_stock", {"w": w0}, [{"w": a}, {"w": b}], tag="flat")["w"]
    oa, ob = (a - w0).flatten(), (b - w0).flatten()
    t = t_of(float(oa @ ob / (oa.norm() * ob.norm())), 2)
    torch.testing.assert_close(flat, t * (a + b) / 2 + (1 - t) * w0)


def test_model_stock_needs_two_models(tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="model_stock needs at least 2 models besides the base"):
        merge_states(tmp_path, "model_stock", {"w": torch.zeros(2)}, [{"w": torch.ones(2)}])
    assert not (tmp_path / "out").exists()
