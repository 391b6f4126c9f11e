"""A content hash for every model directory: `mixmerge_hash.json` beside the weights.

    {"files": {"model.safetensors": {"sha256": "...", "size": 1234}}, "digest": "..."}

`digest` is the sha256 over the sorted "name sha256" lines of the weight files (*.safetensors,
*.bin), so two directories with byte-identical weights share it, whatever else they hold. The
writers of model directories record it as they write the weights: the merge engine hashes each
shard while streaming it to disk (merge.modelio.ShardWriter), DPO training and the base-model
step hash their files once after saving. `model_digest` reads the record; a directory without
one (a model made elsewhere) is hashed once, on first use, and the result kept in
`$MIXMERGE_CACHE_DIR/model_hashes/` keyed by the files' paths, sizes and mtimes, so a Snakemake
output directory is never written to after its job ended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixmerge.io import cache_root, sha256_file, write_json

HASH_FILE = "mixmerge_hash.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_files(model_dir: Path) -> list[Path]:
    return sorted(
        p for p in model_dir.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    )


def digest_of(files: Mapping[str, Mapping[str, Any]]) -> str:
    lines = "".join(f"{name} {files[name]['sha256']}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def hash_record(model_dir: Path, known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The record of a model directory's weight files; `known` gives sha256s already computed
    (file name -> hex), the rest are read and hashed."""
    known = dict(known or {})
    files = {
        p.name: {"sha256": known.get(p.name) or sha256_file(p), "size": p.stat().st_size}
        for p in weight_files(model_dir)
    }
    if not files:
        raise FileNotFoundError(f"{model_dir}: no weight files (*.safetensors, *.bin) to hash")
    return {"files": files, "digest": digest_of(files)}


def write_hash(model_dir: str | Path, known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write `mixmerge_hash.json` into a model directory being created; returns the record."""
    model_dir = Path(model_dir)
    record = hash_record(model_dir, known)
    write_json(model_dir / HASH_FILE, record)
    return record


def _matches(record: Mapping[str, Any], model_dir: Path) -> bool:
    files = record.get("files") or {}
    present = {p.name: p.stat().st_size for p in weight_files(model_dir)}
    return bool(files) and present == {name: int(f["size"]) for name, f in files.items()}


def _side_cache(model_dir: Path) -> Path:
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files(model_dir)]
    key = hashlib.sha256(json.dumps([str(model_dir.resolve()), stamp]).encode()).hexdigest()
    return cache_root() / "model_hashes" / f"{key[:32]}.json"


def model_digest(model_dir: str | Path) -> str:
    """The content digest of a model directory's weights (see the module docstring)."""
    model_dir = Path(model_dir)
    own = model_dir / HASH_FILE
    if own.is_file():
        record = json.loads(own.read_text(encoding="utf-8"))
        if _matches(record, model_dir):
            return str(record["digest"])
    cached = _side_cache(model_dir)
    if cached.is_file():
        return str(json.loads(cached.read_text(encoding="utf-8"))["digest"])
    record = hash_record(model_dir)
    write_json(cached, record)
    return str(record["digest"])
