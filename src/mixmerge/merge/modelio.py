"""Reading HF safetensors checkpoints tensor by tensor, and size-sharded streaming writing.

Inputs are memory-mapped read-only (no copy out of the page cache: a merge converts straight
from the mapped bytes). Touched pages of a mapping count towards the process's resident set
until they are unmapped, so the engine `release`s each tensor's pages once it is merged;
otherwise peak RSS would grow to the size of every input model. `willneed` asks the kernel
to read the next tensor ahead. Outputs go straight to their final place in the shard file
(the layout is planned from the known output names, shapes and dtypes), so no output shard
is buffered in memory either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import safe_open

from mixmerge.io import read_json, write_json
from mixmerge.merge.errors import MergeError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_ST_TO_TORCH = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
}  # fmt: skip
# Every dtype read or written without safetensors' own loader (the rest fall back to it).
_ST_ALL = {
    **_ST_TO_TORCH,
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
    "I32": torch.int32, "I64": torch.int64,
    **{k: getattr(torch, v) for k, v in (("U16", "uint16"), ("U32", "uint32"),
       ("U64", "uint64"), ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"))
       if hasattr(torch, v)},
}  # fmt: skip
_TORCH_TO_ST = {v: k for k, v in _ST_ALL.items()}


def st_dtype_name(dtype: torch.dtype) -> str:
    """safetensors' name of a torch dtype (e.g. torch.bfloat16 -> 'BF16')."""
    if dtype not in _TORCH_TO_ST:
        raise MergeError(f"dtype {dtype} cannot be written to safetensors")
    return _TORCH_TO_ST[dtype]


def _read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(start of the data section, header entries) of a safetensors file."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


_PAGE = mmap.PAGESIZE


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
        self._maps: dict[Path, mmap.mmap] = {}
        self._where: dict[tuple[Path, str], tuple[int, int, str, list[int]]] = {}

    def open(self, stack: contextlib.ExitStack) -> None:
        """Open every shard (safetensors validates the header); tensors are read when asked for."""
        for f in self._files:
            try:
                self._handles[f] = stack.enter_context(safe_open(str(f), framework="pt"))
                start, header = _read_header(f)
            except Exception as err:  # corrupt header etc.; safetensors raises its own types
                raise MergeError(f"model {self.label}: cannot open {f.name} ({err})") from None
            with open(f, "rb") as fh:
                self._maps[f] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            stack.callback(self._maps[f].close)
            size = len(self._maps[f])
            for name, entry in header.items():
                b, e = entry["data_offsets"]
                if not 0 <= b <= e or start + e > size:
                    raise MergeError(
                        f"model {self.label}: tensor {name} lies outside {f.name} (truncated?)"
                    )
                b, e = entry["data_offsets"]
                self._where[(f, name)] = (start + b, e - b, entry["dtype"], entry["shape"])
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

    def dtype(self, name: str) -> torch.dtype:
        st = self.st_dtype(name)
        return (
            _ST_ALL[st] if st in _ST_ALL else self._handles[self._map[name]].get_tensor(name).dtype
        )

    def view(self, name: str) -> torch.Tensor:
        """The stored tensor as a READ-ONLY view of the mapped file (never write to it)."""
        assert self._map is not None, "open() first"
        f = self._map[name]
        offset, nbytes, st_dtype, shape = self._where[(f, name)]
        dtype = _ST_ALL.get(st_dtype)
        if dtype is None:  # exotic dtype: let safetensors decode it
            return self._handles[f].get_tensor(name)
        if nbytes == 0:
            return torch.empty(tuple(shape), dtype=dtype)
        itemsize = torch.empty((), dtype=dtype).element_size()
        with warnings.catch_warnings():  # the mapping is read-only, and torch says so
            warnings.simplefilter("ignore")
            if offset % itemsize:  # unaligned (old unpadded header): copy bytes out
                raw = torch.frombuffer(
                    self._maps[f], dtype=torch.uint8, count=nbytes, offset=offset
                )
                return raw.clone().view(dtype).reshape(tuple(shape))
            flat = torch.frombuffer(
                self._maps[f], dtype=dtype, count=nbytes // itemsize, offset=offset
            )
        return flat.reshape(tuple(shape))

    def get(self, name: str) -> torch.Tensor:
        """A fresh, writable CPU copy of the stored tensor."""
        return self.view(name).clone()

    def _range(self, name: str) -> tuple[mmap.mmap, int, int]:
        assert self._map is not None, "open() first"
        f = self._map[name]
        offset, nbytes, _, _ = self._where[(f, name)]
        return self._maps[f], offset, nbytes

    def release(self, name: str, upto: int | None = None) -> None:
        """Unmap the pages of a tensor that is done with (they stay in the page cache); with
        `upto`, only those of its first `upto` bytes.

        Only pages lying wholly inside the tensor are released, so neighbours never lose data.
        """
        mm, offset, nbytes = self._range(name)
        start = -(-offset // _PAGE) * _PAGE
        end = (offset + (nbytes if upto is None else min(upto, nbytes))) // _PAGE * _PAGE
        if end > start:
            mm.madvise(mmap.MADV_DONTNEED, start, end - start)

    def willneed(self, name: str) -> None:
        """Ask the kernel to start reading a tensor's pages (read-ahead for a cold cache)."""
        mm, offset, nbytes = self._range(name)
        start = offset // _PAGE * _PAGE
        if nbytes:
            mm.madvise(mmap.MADV_WILLNEED, start, offset + nbytes - start)

    def nbytes(self, name: str) -> int:
        return self._range(name)[2]

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
    """Writes planned output tensors straight into size-limited safetensors shards.

    The layout (which tensor goes to which shard, at which offset) is fixed up front from the
    output names, shapes and dtypes, so every header is written before any data and each
    tensor goes to disk as soon as it is produced: nothing is buffered. A new shard starts
    when the next tensor would overflow `max_shard_bytes` (a lone tensor larger than that gets
    a shard of its own). Shards go to temp names first because the final names need the shard
    count (model-00001-of-0000N.safetensors); one shard is written as model.safetensors.
    Each shard is hashed as it is written (`sha256`: final file name -> hex, after `finish`), so
    the model's content hash (mixmerge.model_hash) costs no second read.
    """

    def __init__(
        self,
        out_dir: Path,
        max_shard_bytes: int,
        entries: Sequence[tuple[str, tuple[int, ...], torch.dtype]],
    ) -> None:
        self.out_dir = out_dir
        self._order = [name for name, _, _ in entries]
        self._next = 0
        self.total_size = 0
        shards: list[list[tuple[str, tuple[int, ...], torch.dtype, int]]] = []
        size = 0
        for name, shape, dtype in entries:
            nbytes = _numel(shape) * _itemsize(dtype)
            if not shards or (shards[-1] and size + nbytes > max_shard_bytes):
                shards.append([])
                size = 0
            shards[-1].append((name, tuple(shape), dtype, nbytes))
            size += nbytes
            self.total_size += nbytes
        if not shards:
            shards.append([])
        self._shards = shards
        self._entry = {e[0]: (i, e) for i, shard in enumerate(shards) for e in shard}
        self._last_of_shard = {shard[-1][0] for shard in shards if shard}
        self._tmp = [out_dir / f".shard-{i:05d}.tmp" for i in range(len(shards))]
        self._fh: BinaryIO | None = None
        self._open_shard: int | None = None
        self._current: tuple[str, torch.dtype, int] | None = None
        self._written = 0
        self._hashers: dict[int, Any] = {}
        self.sha256: dict[str, str] = {}

    def _header(self, shard: list[tuple[str, tuple[int, ...], torch.dtype, int]]) -> bytes:
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape, dtype, nbytes in shard:
            header[name] = {
                "dtype": st_dtype_name(dtype),
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8-byte alignment
        return struct.pack("<Q", len(raw)) + raw

    def _start(self, i: int) -> None:
        self._fh = open(self._tmp[i], "wb")  # noqa: SIM115 (closed in add/_close)
        header = self._header(self._shards[i])
        self._hashers[i] = hashlib.sha256(header)
        self._fh.write(header)
        self._open_shard = i

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next planned tensor whole (tensors must come in the planned order)."""
        planned = self._entry.get(name)
        if planned is not None and tuple(tensor.shape) != planned[1][1]:
            raise RuntimeError(f"ShardWriter: {name} is not the planned shape {planned[1][1]}")
        self.begin(name)
        self.write(tensor)
        self.end()

    def begin(self, name: str) -> None:
        """Start the next planned tensor; its bytes follow in `write` calls, then `end`."""
        if self._next >= len(self._order) or self._order[self._next] != name:
            raise RuntimeError(f"ShardWriter: {name} written out of the planned order")
        i, (_, _, dtype, nbytes) = self._entry[name]
        if self._open_shard != i:
            self._close()
            self._start(i)
        self._current = (name, dtype, nbytes)
        self._written = 0

    def write(self, part: torch.Tensor) -> None:
        """Append a piece (any shape; its elements in row-major order) of the current tensor."""
        assert self._current is not None and self._fh is not None, "begin() first"
        name, dtype, nbytes = self._current
        if part.dtype != dtype:
            raise RuntimeError(f"ShardWriter: {name} is planned as {dtype}, got {part.dtype}")
        if part.numel():
            flat = part.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            self._written += flat.numel()
            if self._written > nbytes:
                raise RuntimeError(f"ShardWriter: more bytes than planned for {name}")
            data = memoryview(flat.numpy())
            self._hashers[self._open_shard].update(data)  # type: ignore[index]
            self._fh.write(data)

    def end(self) -> None:
        assert self._current is not None, "begin() first"
        name, _, nbytes = self._current
        if self._written != nbytes:
            raise RuntimeError(f"ShardWriter: {name} got {self._written} of {nbytes} bytes")
        self._current = None
        self._next += 1
        if name in self._last_of_shard:
            self._close()

    def finish(self) -> list[str]:
        """Give shards their final names, write the index if sharded; return file names."""
        if self._next != len(self._order):
            raise RuntimeError("ShardWriter: not every planned tensor was written")
        self._close()
        for i, tmp in enumerate(self._tmp):  # an empty plan still yields one (empty) shard
            if not tmp.exists():
                self._start(i)
                self._close()
        n = len(self._shards)
        if n == 1:
            os.replace(self._tmp[0], self.out_dir / SINGLE)
            self.sha256 = {SINGLE: self._hashers[0].hexdigest()}
            return [SINGLE]
        weight_map: dict[str, str] = {}
        files = []
        for i, (tmp, shard) in enumerate(zip(self._tmp, self._shards, strict=True), 1):
            fname = f"model-{i:05d}-of-{n:05d}.safetensors"
            os.replace(tmp, self.out_dir / fname)
            self.sha256[fname] = self._hashers[i - 1].hexdigest()
            files.append(fname)
            weight_map.update({e[0]: fname for e in shard})
        write_json(
            self.out_dir / INDEX,
            {"metadata": {"total_size": self.total_size}, "weight_map": weight_map},
        )
        return [*files, INDEX]

    def abort(self) -> None:
        self._close()


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
