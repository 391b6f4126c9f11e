"""Merge diagnostics: the four measures on hand-made task vectors, and a recipe end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from mixmerge.io import read_json
from mixmerge.merge.diagnostics import (
    diagnose,
    diagnose_tensor,
    excess_kurtosis,
    sparse_fraction,
    task_name,
    tsvm_interference,
)


def test_sign_conflict_counts_only_elements_two_tasks_touch() -> None:
    base = torch.zeros(4)
    a = torch.tensor([1.0, 1.0, -1.0, 0.0])
    b = torch.tensor([1.0, -1.0, -2.0, 3.0])  # element 3: only b moves it -> no conflict possible
    stats = diagnose_tensor(base, iter([a, b]), 2)
    assert stats["multi_nonzero"] == 3 and stats["conflicts"] == 1
    assert stats["sign_conflict"] == pytest.approx(1 / 3)
    assert stats["tsvm_interference"] is None  # 1-D: no SVD


def test_tsvm_interference_orthogonal_vs_shared_subspaces() -> None:
    eye = torch.eye(6)
    # rank-3 task matrices on disjoint rows/columns: TSVM's factors are orthogonal -> 0
    a = torch.zeros(6, 6)
    a[:3, :3] = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    b = torch.zeros(6, 6)
    b[3:, 3:] = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    disjoint = diagnose_tensor(torch.zeros(6, 6), iter([a, b]), 2)
    assert disjoint["svd_k"] == 3
    assert disjoint["tsvm_interference"] == pytest.approx(0.0, abs=1e-5)
    # the same task twice: U1 = U2, V1 = V2 -> large interference
    same = diagnose_tensor(torch.zeros(6, 6), iter([a, a.clone()]), 2)
    assert same["tsvm_interference"] > 1.0
    # direct formula on factors: U = V = [e1, e1], Σ = diag(2, 1): (UᵀU−I) = [[0,1],[1,0]]
    u = eye[:, :1]
    value, rel = tsvm_interference([(u, torch.tensor([2.0]), u), (u, torch.tensor([1.0]), u)])
    assert value == pytest.approx(3.0) and rel == pytest.approx(1.0)  # [[1,0],[0,2]] -> L1 3


def test_sparsity_and_kurtosis() -> None:
    delta = torch.tensor([0.0, 0.0, 0.05, 1.0, -1.0, 2.0, -2.0, 4.0])  # mean|δ| = 1.2625
    assert sparse_fraction(delta) == pytest.approx(3 / 8)  # |δ| < 0.12625
    assert sparse_fraction(torch.zeros(5)) == 1.0
    gauss = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    assert excess_kurtosis(gauss) == pytest.approx(0.0, abs=0.05)
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((200_000,))
    assert excess_kurtosis(laplace) == pytest.approx(3.0, abs=0.3)  # heavy tails
    assert excess_kurtosis(torch.ones(10)) is None


def test_diagnose_recipe(
    base_dir: Path, make_finetune: Callable[..., Path], tmp_path: Path
) -> None:
    fts = [make_finetune(1), make_finetune(2), make_finetune(3, shards=2)]
    recipe = tmp_path / "ties.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "merge_method": "ties",
                "base_model": str(base_dir),
                "models": [{"model": str(m), "parameters": {"weight": 1.0}} for m in fts],
            }
        )
    )
    out = tmp_path / "diag.json"
    result = diagnose(recipe, out)
    assert read_json(out) == result
    assert result["tasks"] == [str(m) for m in fts]  # outside results/<run>/models/: the paths
    assert [layer["layer"] for layer in result["layers"]] == [0, 1]
    layer = result["layers"][0]
    # 7 projections of a hidden-16 / intermediate-32 / 1-kv-head Llama layer and 2 norms
    assert layer["n_tensors"] == 9 and layer["numel"] == 2 * 256 + 2 * 128 + 3 * 512 + 2 * 16
    assert 0.5 < layer["sign_conflict"] < 1.0  # 3 random deltas: P(mixed signs) = 3/4
    assert layer["tsvm_interference"] > 0 and len(layer["sparsity_per_task"]) == 3
    assert result["non_layer"]["n_tensors"] == 3  # embeddings, final norm, lm_head
    q = next(t for t in result["tensors"] if t["tensor"].endswith("0.self_attn.q_proj.weight"))
    assert q["svd_k"] == 16 // 3


def test_task_name_and_bad_recipes(tmp_path: Path) -> None:
    assert task_name("results/x/models/dpo/honesty/b0.1") == "dpo/honesty/b0.1"
    assert task_name("/abs/fine-tune") == "/abs/fine-tune"
    bad = tmp_path / "r.yaml"
    bad.write_text("merge_method: linear\nmodels: [{model: a}]\n")
    with pytest.raises(ValueError, match="no base_model"):
        diagnose(bad)
    with pytest.raises(FileNotFoundError):
        diagnose(tmp_path / "missing.yaml")
