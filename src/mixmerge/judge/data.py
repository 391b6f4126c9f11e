"""Benchmark data files for the judged benchmarks: local paths or pinned URLs, checked by sha256.

A benchmark's `data_files` entry is either a local path or an http(s) URL (e.g. a raw GitHub file
at a fixed commit). URLs are downloaded once into `$MIXMERGE_CACHE_DIR/downloads` (default
`~/.cache/mixmerge/downloads`). When the benchmark's `sha256: {key: hex}` names a hash, the file
must match it, local or downloaded; the hash actually read is always recorded in the score file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from mixmerge.hub import download, sha256_file, url_file, url_folder, url_stands_in

log = logging.getLogger(__name__)

_URL = re.compile(r"^https?://", re.IGNORECASE)


def download_dir() -> Path:
    root = os.environ.get("MIXMERGE_CACHE_DIR") or Path.home() / ".cache" / "mixmerge"
    return Path(root) / "downloads"


def _download(url: str, expected: str | None) -> Path:
    mirrored = url_file(url)  # with a hub mirror, the file comes from it and nowhere else
    if mirrored is not None:
        return mirrored
    name = url.rstrip("/").rsplit("/", 1)[-1] or "file"
    target = download_dir() / url_folder(url) / name
    if target.is_file() and (expected is None or sha256_file(target) == expected):
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("MIXMERGE_OFFLINE") == "1":
        raise RuntimeError(
            f"offline and not downloaded yet: {url} (set data_files to a local copy)"
        )
    log.info("downloading %s", url)
    return download(url, target, timeout=60)


def resolve_data_file(spec: str | Path, expected_sha256: str | None = None) -> tuple[Path, str]:
    """(local path, its sha256) for a path or URL; a hash mismatch is an error."""
    spec = str(spec)
    expected = expected_sha256.lower() if expected_sha256 else None
    path = _download(spec, expected) if _URL.match(spec) else Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark data file not found: {path}")
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        if _URL.match(spec) and url_stands_in(spec, expected):
            log.warning("%s: a rehearsal replica (sha256 %s) stands in for %s", spec, actual, expected)
        else:
            raise ValueError(f"{spec}: sha256 is {actual}, config expects {expected}")
    elif expected is None and _URL.match(spec):
        log.warning("%s is not pinned: set its sha256 to %s in the config", spec, actual)
    return path, actual


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
