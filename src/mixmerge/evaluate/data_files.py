"""Benchmark data files for the judged benchmarks: local paths or pinned URLs, checked by sha256
(`resolve_data_file`, from mixmerge.hub, which every stage's data files go through).

A benchmark's `data_files` entry is either a local path or an http(s) URL (e.g. a raw GitHub file
at a fixed commit). URLs are downloaded once into `$MIXMERGE_CACHE_DIR/downloads` (default
`~/.cache/mixmerge/downloads`). When the benchmark's `sha256: {key: hex}` names a hash, the file
must match it, local or downloaded; the hash actually read is always recorded in the score file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mixmerge.hub import download_dir, resolve_data_file, sha256_file

__all__ = [
    "benchmark_files",
    "download_dir",
    "read_json_or_jsonl",
    "resolve_data_file",
    "sha256_file",
]

log = logging.getLogger(__name__)


def benchmark_files(
    bench_cfg: dict[str, Any],
    benchmark: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> tuple[dict[str, Path], dict[str, str]]:
    """Resolve `bench_cfg["data_files"]` ({key: path or URL}) -> ({key: path}, {key: sha256})."""
    files = bench_cfg.get("data_files")
    if isinstance(files, (str, Path)) and len(required) == 1:
        files = {required[0]: files}
    if not isinstance(files, dict):
        keys = ", ".join(required + optional)
        raise ValueError(f"{benchmark}: data_files must map {keys} to paths or URLs")
    missing = [k for k in required if not files.get(k)]
    if missing:
        raise ValueError(f"{benchmark}: data_files lacks {', '.join(missing)}")
    unknown = sorted(set(files) - set(required) - set(optional))
    if unknown:
        raise ValueError(
            f"{benchmark}: unknown data_files key {unknown[0]!r} "
            f"(known: {', '.join(required + optional)})"
        )
    hashes = bench_cfg.get("sha256") or {}
    paths, sums = {}, {}
    for key, spec in files.items():
        if spec:
            paths[key], sums[key] = resolve_data_file(spec, hashes.get(key))
    return paths, sums


def read_json_or_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON array file or a JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected JSON objects, one per item")
    return rows
