"""linear and task_arithmetic against hand-computed expectations (MergeKit semantics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from merge_helpers import read_state

from mixmerge.merge import run_merge


def merged(recipe: dict, out: Path, **kw) -> dict[str, torch.Tensor]:
    run_merge(recipe, out, progress=False, **kw)
    return read_state(out)


def assert_states(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-6, atol=1e-6, msg=name)


@pytest.mark.parametrize("normalize", [None, True, False])
def test_linear_weights_and_normalize(
    make_finetune: Callable[..., Path], tmp_path: Path, normalize: bool | None
) -> None:
    a, b = make_finetune(1), make_finetune(2)
    recipe: dict = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(b), "parameters": {"weight": 3.0}},
        ],
    }
    if normalize is not None:
        recipe["parameters"] = {"normalize": normalize}
    sa, sb = read_state(a), read_state(b)
    div = 1.0 if normalize is False else 4.0  # MergeKit linear: normalize defaults to true
    want = {n: (1.0 * sa[n] + 3.0 * sb[n]) / div for n in sa}
    assert_states(merged(recipe, tmp_path / "out"), want)


def test_linear_base_only_counts_when_listed(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    a = make_finetune(1)
    sbase, sa = read_state(base_dir), read_state(a)
    unlisted = {
        "merge_method": "linear",
        "base_model": str(base_dir),
        "models": [{"model": str(a), "parameters": {"weight": 2.0}}],
    }
    assert_states(merged(unlisted, tmp_path / "o1"), sa)
    listed = dict(
        unlisted,
        models=[*unlisted["models"], {"model": str(base_dir), "parameters": {"weight": 1.0}}],
    )
    want = {n: (2 * sa[n] + sbase[n]) / 3 for n in sa}
    assert_states(merged(listed, tmp_path / "o2"), want)


@pytest.mark.parametrize(
    ("params", "scale"),
    [
        ({}, 1.0),
        ({"lambda": 0.5}, 0.5),
        ({"normalize": True}, 1 / 0.8),
        ({"normalize": True, "lambda": 2.0}, 2 / 0.8),
    ],
)
def test_task_arithmetic(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path,
    params: dict, scale: float,
) -> None:  # fmt: skip
    a, b = make_finetune(1), make_finetune(2)
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(base_dir),
        "models": [
            {"model": str(a), "parameters": {"weight": 0.3}},
            {"model": str(b), "parameters": {"weight": 0.5}},
        ],
        "parameters": params,
    }
    s0, sa, sb = read_state(base_dir), read_state(a), read_state(b)
    want = {n: s0[n] + scale * (0.3 * (sa[n] - s0[n]) + 0.5 * (sb[n] - s0[n])) for n in s0}
    assert_states(merged(recipe, tmp_path / "out"), want)


def test_task_arithmetic_skips_listed_base(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    # MergeKit drops the base from the task vectors, so its weight never enters normalize.
    a = make_finetune(1)
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(base_dir),
        "models": [
            {"model": str(base_dir), "parameters": {"weight": 5.0}},
            {"model": str(a), "parameters": {"weight": 0.5}},
        ],
        "parameters": {"normalize": True},
    }
    assert_states(merged(recipe, tmp_path / "out"), read_state(a))


def test_global_weight_and_filter_lists(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    a, b = make_finetune(1), make_finetune(2)
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(base_dir),
        "models": [
            {
                "model": str(a),
                "parameters": {"weight": [{"filter": "mlp", "value": 1.0}, {"value": 0.25}]},
            },
            {"model": str(b)},  # falls back to the global weight, as in MergeKit
        ],
        "parameters": {"weight": 0.5},
    }
    s0, sa, sb = read_state(base_dir), read_state(a), read_state(b)
    want = {}
    for n in s0:
        wa = 1.0 if "mlp" in n else 0.25
        want[n] = s0[n] + wa * (sa[n] - s0[n]) + 0.5 * (sb[n] - s0[n])
    assert_states(merged(recipe, tmp_path / "out"), want)


def test_gradient_parameter(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    # [0, 1] over 2 layers: layer 0 / embeddings t=0, layer 1 / norm / lm_head t=1.
    a = make_finetune(1)
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(base_dir),
        "models": [{"model": str(a), "parameters": {"weight": [0.0, 1.0]}}],
    }
    s0, sa = read_state(base_dir), read_state(a)
    got = merged(recipe, tmp_path / "out")
    for n in s0:
        w = 0.0 if ("layers.0." in n or "embed" in n) else 1.0
        torch.testing.assert_close(got[n], s0[n] + w * (sa[n] - s0[n]), msg=n)
