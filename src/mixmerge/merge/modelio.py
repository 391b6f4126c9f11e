"""Memory-mapped reading of HF safetensors checkpoints and size-sharded writing."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mixmerge.io import read_json, write_json
from mixmerge.merge.errors import MergeError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_ST_TO_TORCH = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
}  # fmt: skip


class ModelFiles:
    """One input model directory: config.json + model.safetensors or a sharded index."""

    def __init__(self, label: str, path: Path) -> None:
        self.label = label
        self.path = path
        if not path.is_dir():
            raise MergeError(f"model {label}: directory not found")
        cfg = path / "config.json"
        if not cfg.is_file():
            raise MergeError(f"model {label}: config.json missing")
        try:
            self.config: dict[str, Any] = read_json(cfg)
        except ValueError as err:
            raise MergeError(f"model {label}: config.json unreadable ({err})") from None
        self._files: list[Path]
        self._map: dict[str, Path] | None = None
        if (path / SINGLE).is_file():
            self._files = [path / SINGLE]
        elif (path / INDEX).is_file():
            try:
                wmap = read_json(path / INDEX)["weight_map"]
            except (ValueError, KeyError, TypeError):
                raise MergeError(f"model {label}: {INDEX} has no weight_map") from None
            self._map = {name: path / fname for name, fname in wmap.items()}
            self._files = sorted(set(self._map.values()))
            for f in self._files:
                if not f.is_file():
                    raise MergeError(f"model {label}: shard {f.name} listed in {INDEX} is missing")
        else:
            raise MergeError(f"model {label}: no {SINGLE} or {INDEX} (only safetensors supported)")
        self._handles: dict[Path, Any] = {}

    def open(self, stack: contextlib.ExitStack) -> None:
        """Open every shard memory-mapped; tensors are read only when asked for."""
        for f in self._files:
            try:
                self._handles[f] = stack.enter_context(safe_open(str(f), framework="pt"))
            except Exception as err:  # corrupt header etc.; safetensors raises its own types
                raise MergeError(f"model {self.label}: cannot open {f.name} ({err})") from None
        if self._map is None:
            only = self._files[0]
            self._map = {name: only for name in self._handles[only].keys()}  # noqa: SIM118

    @property
    def names(self) -> list[str]:
        assert self._map is not None, "open() first"
        return list(self._map)

    def has(self, name: str) -> bool:
        assert self._map is not None, "open() first"
        return name in self._map

    def _slice(self, name: str) -> Any:
        assert self._map is not None, "open() first"
        return self._handles[self._map[name]].get_slice(name)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._slice(name).get_shape())

    def st_dtype(self, name: str) -> str:
        return self._slice(name).get_dtype()

    def get(self, name: str) -> torch.Tensor:
        assert self._map is not None, "open() first"
        return self._handles[self._map[name]].get_tensor(name)

    def float_dtype(self) -> torch.dtype | None:
        """dtype of the first floating tensor (what the checkpoint actually stores)."""
        for name in self.names:
            st = self.st_dtype(name)
            if st in _ST_TO_TORCH:
                return _ST_TO_TORCH[st]
        return None


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3, "M": 10**6,
          "G": 10**9, "T": 10**12}  # fmt: skip


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string like '2GB', '500MB', '1GiB' (HF conventions)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        m = _SIZE_RE.match(str(value))
        unit = m.group(2).upper() if m else ""
        if not m or unit not in _UNITS:
            raise MergeError(f"max_shard_size: cannot parse {value!r}")
        size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise MergeError(f"max_shard_size must be positive, got {value!r}")
    return size


class ShardWriter:
    """Buffers output tensors and writes a shard whenever the next tensor would overflow it.

    Shards go to temp names first because the final names need the shard count
    (model-00001-of-0000N.safetensors); one shard is written as model.safetensors.
    """

    def __init__(self, out_dir: Path, max_shard_bytes: int) -> None:
        self.out_dir = out_dir
        self.max_bytes = max_shard_bytes
        self._buf: dict[str, torch.Tensor] = {}
        self._buf_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self.total_size = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self._buf and self._buf_bytes + nbytes > self.max_bytes:
            self._flush()
        self._buf[name] = tensor.contiguous()
        self._buf_bytes += nbytes
        self.total_size += nbytes

    def _flush(self) -> None:
        tmp = self.out_dir / f".shard-{len(self._shards):05d}.tmp"
        save_file(self._buf, str(tmp), metadata={"format": "pt"})
        self._shards.append((tmp, list(self._buf)))
        self._buf, self._buf_bytes = {}, 0

    def finish(self) -> list[str]:
        """Flush, give shards their final names, write the index if sharded; return file names."""
        if self._buf or not self._shards:
            self._flush()
        n = len(self._shards)
        if n == 1:
            os.replace(self._shards[0][0], self.out_dir / SINGLE)
            return [SINGLE]
        weight_map: dict[str, str] = {}
        files = []
        for i, (tmp, names) in enumerate(self._shards, 1):
            fname = f"model-{i:05d}-of-{n:05d}.safetensors"
            os.replace(tmp, self.out_dir / fname)
            files.append(fname)
            weight_map.update({name: fname for name in names})
        write_json(
            self.out_dir / INDEX,
            {"metadata": {"total_size": self.total_size}, "weight_map": weight_map},
        )
        return [*files, INDEX]
