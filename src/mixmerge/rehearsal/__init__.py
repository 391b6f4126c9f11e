"""The rehearsal mirror: hub-shaped replicas of every artifact the paper configs read, built offline.

`build_mirror(out, configs)` lists the artifacts of the configs (`mixmerge.fetch.config_artifacts`)
and writes, for each, a small replica with the hub repo's REAL layout (file names and formats,
dataset config and split names, column schemas, chat templates, special tokens, architectures and
parameter names) into `out` in the mirror layout of `mixmerge.hub`, plus the manifest entries
(`hub.snapshot_record` / `hub.url_record`). A config with `hub.mirror: out` then runs the paper
path end to end on a laptop: the paper configs, unchanged but for scale, against the replicas.

- deterministic: the same seed writes the same bytes; a repo's `commit` is a sha1 over its files
  (`common.folder_commit`), its `revision` None;
- honest about pins: a replica records the pin the configs ask for (a hub revision, a URL file's
  sha256) as `stands_in_for`, so the pinned paper configs run against it, while its own commit /
  sha256 stay those of the replica's bytes (`hub.stands_in`);
- idempotent: an artifact whose files still match its manifest record and whose recipe (seed,
  replica code, library versions) is unchanged is skipped;
- complete or loud: an artifact of the configs with no replica builder raises RehearsalError
  naming it (and who reads it).

Builders, one module per concern: `datasets` (the 10 training sets), `benchmarks` (benchmark
datasets), `models` (tiny models), `urls` (URL files copied from ../shared/upstream-samples).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixmerge.fetch import config_artifacts
from mixmerge.hub import (
    Artifact,
    local_path,
    read_manifest,
    sha256_file,
    snapshot_record,
    url_record,
    write_manifest,
)
from mixmerge.io import atomic_dir
from mixmerge.rehearsal import benchmarks, models, urls
from mixmerge.rehearsal import datasets as training
from mixmerge.rehearsal.common import RehearsalError, folder_commit

log = logging.getLogger(__name__)

STATE_DIR = ".rehearsal"  # out/.rehearsal/state.json: the recipe fingerprint of each replica
STATE_FILE = "state.json"
DEFAULT_SEED = 0

Builder = Callable[[Path, int], None]


@dataclass(frozen=True)
class Replica:
    """How to build one artifact: `build(path, seed)` fills `path` (a folder for repos, the file
    itself for URLs)."""

    kind: str
    id: str
    build: Builder

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


def _registry() -> dict[str, Replica]:
    table: dict[str, Replica] = {}
    for kind, builders in (
        ("dataset", training.BUILDERS),
        ("dataset", benchmarks.BUILDERS),
        ("model", models.BUILDERS),
        ("url", urls.BUILDERS),
    ):
        for ident, build in builders.items():
            replica = Replica(kind, ident, build)
            table[replica.key] = replica
    return table


# artifact key ("dataset:<owner>/<name>", "model:...", "url:<url>") -> its replica builder
REGISTRY: dict[str, Replica] = _registry()


def paper_artifacts(configs: Sequence[str | Path]) -> dict[str, Artifact]:
    """Every artifact of the configs, one per key (the first occurrence wins)."""
    from mixmerge.config import load

    found: dict[str, Artifact] = {}
    for path in configs:
        for art in config_artifacts(load(str(path))):
            found.setdefault(art.key, art)
    return found


def _recipe_hash() -> str:
    """What the bytes of a replica depend on besides its seed: this package's code and the
    versions of the libraries that write the files."""
    import importlib.metadata

    import datasets
    import tokenizers
    import torch
    import transformers

    digest = hashlib.sha1()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    versions = (
        datasets.__version__,
        importlib.metadata.version("pyarrow"),  # writes the parquet files, through datasets
        tokenizers.__version__,
        torch.__version__,
        transformers.__version__,
    )
    digest.update(repr(versions).encode())
    return digest.hexdigest()


def _fingerprint(recipe: str, key: str, seed: int) -> str:
    return hashlib.sha1(f"{recipe}\0{key}\0{seed}".encode()).hexdigest()


def _read_state(out: Path) -> dict[str, Any]:
    path = out / STATE_DIR / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_state(out: Path, state: Mapping[str, Any]) -> None:
    from mixmerge.io import write_json

    write_json(out / STATE_DIR / STATE_FILE, dict(sorted(state.items())))


def _current(art: Artifact, target: Path, record: Mapping[str, Any] | None) -> bool:
    """Whether the files on disk are still what the manifest recorded."""
    if not record or not target.exists():
        return False
    if art.kind == "url":
        return target.is_file() and sha256_file(target) == record.get("sha256")
    return target.is_dir() and folder_commit(target) == record.get("commit")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars from datasets/transformers while building (restored afterwards)."""
    import datasets
    from transformers.utils import logging as hf_logging

    ds_off = datasets.are_progress_bars_disabled()
    tf_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not ds_off:
            datasets.enable_progress_bars()
        if tf_on:
            hf_logging.enable_progress_bar()


def _pin(art: Artifact) -> dict[str, str] | None:
    """What the configs pin for an artifact: the replica stands in for it."""
    if art.kind == "url":
        return {"sha256": art.sha256} if art.sha256 else None
    return {"revision": art.revision} if art.revision else None


def _build_one(replica: Replica, art: Artifact, out: Path, seed: int) -> dict[str, Any]:
    """Build into a temp sibling that replaces the target only when complete; return the
    manifest record."""
    target = local_path(out, art.kind, art.id)
    if art.kind == "url":
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            replica.build(partial, seed)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return url_record(art.id, target)
    with atomic_dir(target) as tmp:
        replica.build(tmp, seed)
    return snapshot_record(art.kind, art.id, target, folder_commit(target), None)


def build_mirror(
    out: str | Path,
    configs: Sequence[str | Path],
    seed: int = DEFAULT_SEED,
    force: bool = False,
) -> dict[str, Any]:
    """Write the replica of every artifact of `configs` into the mirror `out`.

    Returns {"mirror": path, "seed": seed, "artifacts": {key: {kind, id, path, built, commit |
    sha256, used_by}}}; `built` is False for an artifact skipped because it was already there
    with the same content and recipe (`force=True` rebuilds everything). A mirror entry this
    builder did not write (a real snapshot) is never replaced unless `force=True`."""
    out = Path(out).expanduser().resolve()
    artifacts = paper_artifacts(configs)
    missing = [art for key, art in artifacts.items() if key not in REGISTRY]
    if missing:
        raise RehearsalError(
            "no rehearsal replica builder for: "
            + "; ".join(art.describe() for art in missing)
            + " (add one to mixmerge.rehearsal: datasets, benchmarks, models or urls)"
        )
    out.mkdir(parents=True, exist_ok=True)
    recipe = _recipe_hash()
    state = _read_state(out)
    manifest = read_manifest(out)
    foreign = sorted(k for k in artifacts if k in manifest and k not in state)
    if foreign and not force:
        raise RehearsalError(
            f"{out} holds artifacts the rehearsal builder did not write (a real hub mirror from "
            f"`mixmerge fetch`?): {', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}; "
            "build the rehearsal mirror in another folder (force=True replaces them)"
        )
    entries: dict[str, Any] = {}
    report: dict[str, Any] = {}
    with _quiet():
        for key, art in sorted(artifacts.items()):
            target = local_path(out, art.kind, art.id)
            fingerprint = _fingerprint(recipe, key, seed)
            record = manifest.get(key)
            fresh = (
                not force
                and state.get(key, {}).get("fingerprint") == fingerprint
                and _current(art, target, record)
            )
            if not fresh:
                log.info("rehearsal: building %s", key)
                record = _build_one(REGISTRY[key], art, out, seed)
                entries[key] = record
                state[key] = {"fingerprint": fingerprint, "seed": seed}
            assert record is not None
            pin = _pin(art)
            if record.get("stands_in_for") != pin:
                record = {**record, "stands_in_for": pin}
                entries[key] = record
            report[key] = {
                "kind": art.kind,
                "id": art.id,
                "path": str(target),
                "built": not fresh,
                **(
                    {"sha256": record["sha256"]}
                    if art.kind == "url"
                    else {"commit": record["commit"]}
                ),
                "used_by": list(art.used_by),
            }
    if entries:
        write_manifest(out, entries)
        _write_state(out, state)
    return {"mirror": str(out), "seed": seed, "artifacts": report}


__all__ = ["REGISTRY", "RehearsalError", "Replica", "build_mirror", "paper_artifacts"]
