"""Streaming, tensor-by-tensor model merging with MergeKit-compatible recipes and semantics.

from mixmerge.merge import run_merge
run_merge("recipe.yaml", "out/merged", device="cpu", seed=0)

The names below load on first use (PEP 562), so that `mixmerge recipe`, which only writes a
YAML file, does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "METHOD_NAMES": "mixmerge.merge.registry",
    "MergeError": "mixmerge.merge.errors",
    "run_merge": "mixmerge.merge.engine",
    "tensor_generator": "mixmerge.merge.rng",
    "tensor_seed": "mixmerge.merge.rng",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
