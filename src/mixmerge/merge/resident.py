"""Merging into a model held in memory: the search's trials, which write no model to disk.

`ResidentWriter` takes the place of the shard writer (the same begin / write / end / add calls,
in plan order) and copies each merged chunk into the matching tensor of a loaded model's state
dict, hashing the bytes as they pass, so a trial's weights have a content digest (the key of its
cached replies) without a second pass over them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

from mixmerge.merge.errors import MergeError


class ResidentWriter:
    """Writes the merged tensors into `targets` (name -> tensor of a resident model)."""

    def __init__(self, targets: Mapping[str, torch.Tensor]) -> None:
        self._targets = targets
        self._hash = hashlib.sha256()
        self._flat: torch.Tensor | None = None
        self._name = ""
        self._pos = 0
        self.written: list[str] = []

    def begin(self, name: str) -> None:
        if name not in self._targets:
            raise MergeError(f"the resident model has no tensor {name} (merged models differ from it)")
        target = self._targets[name]
        self._flat = target.view(-1)
        self._name, self._pos = name, 0
        self._hash.update(f"{name}:{list(target.shape)}:{target.dtype}\n".encode())

    def write(self, part: torch.Tensor) -> None:
        assert self._flat is not None
        part = part.reshape(-1)
        end = self._pos + part.numel()
        if end > self._flat.numel() or part.dtype != self._flat.dtype:
            raise MergeError(
                f"merged tensor {self._name} does not fit the resident model's "
                f"({list(self._targets[self._name].shape)}, {self._targets[self._name].dtype})"
            )
        cpu = part.detach().to("cpu").contiguous()
        self._hash.update(cpu.view(torch.uint8).numpy())
        self._flat[self._pos : end].copy_(cpu)
        self._pos = end

    def end(self) -> None:
        assert self._flat is not None
        if self._pos != self._flat.numel():
            raise MergeError(f"merged tensor {self._name}: {self._pos} of {self._flat.numel()} values")
        self.written.append(self._name)
        self._flat = None

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self.begin(name)
        self.write(tensor)
        self.end()

    def digest(self) -> str:
        """The content digest of everything written, in order."""
        return "resident-" + self._hash.hexdigest()
