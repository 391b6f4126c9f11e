"""Per-tensor random streams: a merge's random draws depend only on (seed, tensor, model)."""

from __future__ import annotations

import hashlib

import torch


def tensor_seed(seed: int, tensor_name: str, model_index: int) -> int:
    """Stable 63-bit seed from (seed, tensor name, model index).

    hashlib (not `hash()`) so the value survives interpreter restarts and PYTHONHASHSEED.
    """
    key = f"{int(seed)}\x00{tensor_name}\x00{int(model_index)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def tensor_generator(seed: int, tensor_name: str, model_index: int) -> torch.Generator:
    """A CPU generator for one (tensor, model) pair.

    Always CPU: CUDA generators yield different streams, so draws are made on CPU and moved
    to the compute device, which keeps results independent of `device`.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(tensor_seed(seed, tensor_name, model_index))
    return gen
