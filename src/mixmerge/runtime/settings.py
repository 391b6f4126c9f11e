"""How a model generates: every key of the config's generation block (`$defs.generation`:
evaluate.generation, overridden by a benchmark's own `generation`) with its default, the one
place the defaults live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class GenerationSettings:
    """backend: hf (transformers generate) | vllm. top_p / top_k may be "model" (the model's own
    generation_config.json, resolved by `generation.resolve_sampling`); top_k 0 = no cut.
    tensor_parallel_size, gpu_memory_utilization and max_model_len are vLLM's."""

    backend: str = "hf"
    max_new_tokens: int = 512
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float | str = 1.0
    top_k: int | str = 0
    seed: int = 0
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> GenerationSettings:
        """From a (validated) generation block; a key set to null takes the default. Keys that
        are not generation settings are ignored: callers pass merged config blocks."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (block or {}).items() if k in names and v is not None})
