"""Streaming, tensor-by-tensor model merging with MergeKit-compatible recipes and semantics.

from mixmerge.merge import run_merge
run_merge("recipe.yaml", "out/merged", device="cpu", seed=0)
"""

from mixmerge.merge.engine import run_merge
from mixmerge.merge.errors import MergeError
from mixmerge.merge.registry import METHOD_NAMES
from mixmerge.merge.rng import tensor_generator, tensor_seed

__all__ = ["METHOD_NAMES", "MergeError", "run_merge", "tensor_generator", "tensor_seed"]
