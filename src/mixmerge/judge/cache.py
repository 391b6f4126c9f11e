"""Append-only JSONL cache of judge replies, so a rerun never pays twice for the same request."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mixmerge.io import read_jsonl_lenient

T = TypeVar("T")

log = logging.getLogger(__name__)


def cache_key(model: str, request: Any, decoding: dict[str, Any]) -> str:
    """sha256 over exactly what determines a judge reply: the judge model, the full request (the
    messages, or the raw prompt) and the decoding settings; never the API key or the endpoint."""
    payload = json.dumps([model, request, decoding], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JsonlCache:
    """key -> record, loaded once, appended line by line (safe to interrupt; last write wins)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for record in read_jsonl_lenient(self.path):
                if isinstance(record.get("key"), str):
                    self._data[record["key"]] = record
            # A killed writer may leave a line without its newline: end it, so that the next
            # appended record starts on a line of its own instead of being glued to the debris.
            with open(self.path, "rb+") as handle:
                handle.seek(0, 2)
                if handle.tell() and (handle.seek(-1, 2), handle.read(1))[1] != b"\n":
                    handle.write(b"\n")

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def missing(self, keyed: Iterable[tuple[str, T]]) -> tuple[dict[str, T], int]:
        """(the items whose key is not cached, first of each key; how many were cached)."""
        todo: dict[str, T] = {}
        hits = 0
        with self._lock:
            for key, item in keyed:
                if key in self._data:
                    hits += 1
                elif key not in todo:
                    todo[key] = item
        return todo, hits

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._data.get(key)

    def put_many(self, records: Mapping[str, dict[str, Any]]) -> None:
        """Append several records in one open (a batch of scores or labels)."""
        if not records:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                for key, record in records.items():
                    full = {"key": key, **record}
                    self._data[key] = full
                    handle.write(json.dumps(full, ensure_ascii=False) + "\n")  # one write per line

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {"key": key, **record}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._data[key] = record
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write per line in append mode: concurrent jobs sharing the file interleave
            # whole lines, and an interrupted write only loses its own line.
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
