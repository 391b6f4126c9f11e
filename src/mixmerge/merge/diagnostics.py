"""Merge diagnostics computed from the weights: how much the task vectors of a merge interfere.

For a recipe (MergeKit YAML: `base_model` + `models`), the task vectors are
δ_i = θ_i − θ_base, read tensor by tensor with the merge engine's reader (pread, no memory map),
so memory stays near base + one delta + a few per-element counters, whatever the model size.
Per tensor, and aggregated per transformer layer:

- sign_conflict (TIES): among the elements where at least two task vectors are non-zero, the
  fraction where both signs occur (TIES' elected sign is then contradicted by some task).
- tsvm_interference (TSVM's Singular Task Interference, per 2-D tensor):
  ‖(UᵀU − I) Σ (VᵀV − I)‖₁ (entrywise L1, as in Gargiulo et al. 2025), U/Σ/V the concatenation
  of each task's truncated SVD factors with k = ⌊r/T⌋ singular triplets per task, exactly as TSVM
  builds them. `tsvm_interference_rel` divides by ‖Σ‖₁ (scale-free, comparable across layers).
- sparsity Ω: fraction of |δ| < ε with ε = 0.1 · mean|δ| (relative to each task vector, per
  tensor); an all-zero delta counts as fully sparse.
- kurtosis: excess kurtosis of δ (0 for a Gaussian; larger = heavier tails / more outliers).

Only the recipe's `base_model` and `models` matter (any method's recipe over the same models
gives the same diagnostics). The SVDs cost about what a TSVM merge costs; `device="cuda"` helps,
`interference=False` skips them. `mixmerge diagnose` writes the JSON; the report stage only reads
it (`mixmerge report diagnostics` draws it).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from mixmerge.io import write_json
from mixmerge.merge.modelio import FLOAT_DTYPES, ModelFiles

log = logging.getLogger(__name__)

EPSILON_REL = 0.1
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_CHUNK = 1 << 24  # elements per float64 chunk when taking moments of large tensors


def _model_path(entry: Any, where: str) -> str:
    if isinstance(entry, Mapping):
        entry = entry.get("model")
    if not isinstance(entry, (str, Path)) or not str(entry):
        raise ValueError(f"recipe {where}: expected a model path, got {entry!r}")
    return str(entry)


def read_recipe_models(recipe: str | Path) -> tuple[str, str, list[str]]:
    """(merge_method, base path, model paths) of a recipe, without validating the method.

    Parsed directly (not with the merge engine's `load_recipe`) so diagnostics work for any
    recipe, including methods this checkout's engine does not register.
    """
    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, Mapping) or not isinstance(raw.get("models"), list):
        raise ValueError(f"recipe {path}: needs a `models` list")
    if raw.get("base_model") is None:
        raise ValueError(f"recipe {path}: no base_model, so there are no task vectors to diagnose")
    base = _model_path(raw["base_model"], "base_model")
    models = [_model_path(m, f"models[{i}]") for i, m in enumerate(raw["models"])]
    if not models:
        raise ValueError(f"recipe {path}: `models` is empty")
    return str(raw.get("merge_method", "")), base, models


def task_name(label: str) -> str:
    """The model id under results/<run>/models/ when the path has one, else the path."""
    parts = Path(label).parts
    if "models" in parts:
        idx = len(parts) - 1 - parts[::-1].index("models")
        if idx + 1 < len(parts):
            return "/".join(parts[idx + 1 :])
    return label


def layer_of(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def excess_kurtosis(delta: torch.Tensor) -> float | None:
    """E[(x−μ)⁴]/σ⁴ − 3 in float64, in chunks (bounded memory on huge tensors)."""
    flat = delta.reshape(-1)
    n = flat.numel()
    if n < 2:
        return None
    total = torch.zeros((), dtype=torch.float64, device=flat.device)
    for start in range(0, n, _CHUNK):
        total += flat[start : start + _CHUNK].double().sum()
    mu = total / n
    m2 = torch.zeros((), dtype=torch.float64, device=flat.device)
    m4 = torch.zeros((), dtype=torch.float64, device=flat.device)
    for start in range(0, n, _CHUNK):
        d = flat[start : start + _CHUNK].double() - mu
        d2 = d * d
        m2 += d2.sum()
        m4 += (d2 * d2).sum()
    m2, m4 = m2 / n, m4 / n
    if m2.item() <= 0:
        return None
    return float(m4 / (m2 * m2) - 3.0)


def sparse_fraction(delta: torch.Tensor, epsilon_rel: float = EPSILON_REL) -> float:
    """Fraction of |δ| < ε, ε = epsilon_rel · mean|δ|; an all-zero δ is fully sparse."""
    magnitude = delta.abs()
    eps = epsilon_rel * magnitude.double().mean()
    if eps.item() == 0.0:
        return 1.0
    return float((magnitude < eps).sum().item() / magnitude.numel())


def tsvm_interference(
    factors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[float, float] | None:
    """(‖(UᵀU − I) Σ (VᵀV − I)‖₁, same / ‖Σ‖₁) from per-task truncated (U_i, S_i, V_i)."""
    factors = [f for f in factors if f[1].numel()]
    if not factors:
        return None
    u = torch.cat([f[0] for f in factors], dim=1).double()
    s = torch.cat([f[1] for f in factors]).double()
    v = torch.cat([f[2] for f in factors], dim=1).double()
    eye = torch.eye(s.numel(), dtype=torch.float64, device=s.device)
    sti = ((u.T @ u - eye) * s[None, :] @ (v.T @ v - eye)).abs().sum().item()
    norm = s.abs().sum().item()
    return float(sti), float(sti / norm) if norm > 0 else 0.0


def _truncated_svd(delta: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    return u[:, :k].contiguous(), s[:k].contiguous(), vh[:k].T.contiguous()


def diagnose_tensor(
    base: torch.Tensor,
    models: Iterable[torch.Tensor],
    n_tasks: int,
    interference: bool = True,
    epsilon_rel: float = EPSILON_REL,
) -> dict[str, Any]:
    """Diagnostics of one tensor over `n_tasks` fine-tuned versions of it.

    `models` may be lazy (a generator): only one fine-tuned tensor and its delta are alive at a
    time; the SVD keeps just the k = ⌊r/T⌋ leading factors of each.
    """
    base = base.float()
    pos = torch.zeros(base.shape, dtype=torch.bool, device=base.device)
    neg = torch.zeros_like(pos)
    nonzero = torch.zeros(base.shape, dtype=torch.int16, device=base.device)
    sparsity: list[float] = []
    kurtosis: list[float | None] = []
    factors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    deltas_for_svd = interference and base.dim() == 2
    for model in models:
        delta = model.to(base.device).float() - base
        pos |= delta > 0
        neg |= delta < 0
        nonzero += delta != 0
        sparsity.append(sparse_fraction(delta, epsilon_rel))
        kurtosis.append(excess_kurtosis(delta))
        if deltas_for_svd:
            factors.append(_truncated_svd(delta, min(delta.shape) // n_tasks))
        del delta
    multi = int((nonzero >= 2).sum().item())
    conflicts = int((pos & neg).sum().item())
    out: dict[str, Any] = {
        "numel": base.numel(),
        "conflicts": conflicts,
        "multi_nonzero": multi,
        "sign_conflict": conflicts / multi if multi else None,
        "sparsity": sparsity,
        "kurtosis": kurtosis,
        "tsvm_interference": None,
        "tsvm_interference_rel": None,
        "svd_k": None,
    }
    if deltas_for_svd and factors:
        out["svd_k"] = int(factors[0][1].numel())
        sti = tsvm_interference(factors)
        if sti is not None:
            out["tsvm_interference"], out["tsvm_interference_rel"] = sti
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(tensors: list[dict[str, Any]], n_tasks: int) -> dict[str, Any]:
    """Element-weighted rates (sign conflict, sparsity); plain means over tensors otherwise."""
    numel = sum(t["numel"] for t in tensors)
    multi = sum(t["multi_nonzero"] for t in tensors)
    conflicts = sum(t["conflicts"] for t in tensors)
    per_task_sparsity = [
        sum(t["sparsity"][i] * t["numel"] for t in tensors) / numel if numel else None
        for i in range(n_tasks)
    ]
    per_task_kurtosis = [
        _mean([t["kurtosis"][i] for t in tensors if t["kurtosis"][i] is not None])
        for i in range(n_tasks)
    ]
    sti = [t["tsvm_interference"] for t in tensors if t["tsvm_interference"] is not None]
    sti_rel = [
        t["tsvm_interference_rel"] for t in tensors if t["tsvm_interference_rel"] is not None
    ]
    return {
        "n_tensors": len(tensors),
        "numel": numel,
        "sign_conflict": conflicts / multi if multi else None,
        "tsvm_interference": _mean(sti),
        "tsvm_interference_rel": _mean(sti_rel),
        "sparsity": _mean([s for s in per_task_sparsity if s is not None]),
        "sparsity_per_task": per_task_sparsity,
        "kurtosis": _mean([k for k in per_task_kurtosis if k is not None]),
        "kurtosis_per_task": per_task_kurtosis,
    }


def diagnose(
    recipe: str | Path,
    out: str | Path | None = None,
    device: str = "cpu",
    interference: bool = True,
    epsilon_rel: float = EPSILON_REL,
) -> dict[str, Any]:
    """Diagnostics of a recipe's task vectors; written (atomically) to `out` as JSON if given."""
    method, base_label, model_labels = read_recipe_models(recipe)
    tasks = [task_name(m) for m in model_labels]
    per_tensor: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with contextlib.ExitStack() as stack:
        base = ModelFiles(base_label, Path(base_label))
        base.open(stack)
        models = []
        for label in model_labels:
            reader = ModelFiles(label, Path(label))
            reader.open(stack)
            models.append(reader)
        for name in base.names:
            if base.st_dtype(name) not in FLOAT_DTYPES:
                continue
            shape = base.shape(name)
            missing = [m.label for m in models if not m.has(name) or m.shape(name) != shape]
            if missing:
                skipped.append({"tensor": name, "why": f"absent or reshaped in {missing[0]}"})
                continue
            theta0 = base.get(name).to(device)
            stats = diagnose_tensor(
                theta0,
                (m.get(name) for m in models),  # lazily: one model tensor in memory at a time
                len(models),
                interference=interference,
                epsilon_rel=epsilon_rel,
            )
            stats = {"tensor": name, "layer": layer_of(name), "shape": list(shape), **stats}
            per_tensor.append(stats)
            log.debug("%s: %s", name, {k: stats[k] for k in ("sign_conflict", "svd_k")})
    n = len(tasks)
    layer_ids = sorted({t["layer"] for t in per_tensor if t["layer"] is not None})
    result: dict[str, Any] = {
        "recipe": str(recipe),
        "merge_method": method,
        "base_model": base_label,
        "models": model_labels,
        "tasks": tasks,
        "epsilon_rel": epsilon_rel,
        "interference": interference,
        "layers": [
            {"layer": i, **aggregate([t for t in per_tensor if t["layer"] == i], n)}
            for i in layer_ids
        ],
        "non_layer": aggregate([t for t in per_tensor if t["layer"] is None], n),
        "overall": aggregate(per_tensor, n),
        "tensors": per_tensor,
        "skipped": skipped,
    }
    if out is not None:
        write_json(out, result)
    return result
