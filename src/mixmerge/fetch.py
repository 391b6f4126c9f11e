"""`mixmerge fetch`: download every hub artifact of a config into a mirror, lock it, check it.

    mixmerge fetch --config C --mirror DIR      download (huggingface_hub's snapshot_download,
                                                urllib for URL files) and write C's lock file
    mixmerge fetch --config C --mirror DIR --check   verify DIR offline against C and its lock

The lock file sits beside the config (`<config stem>.lock.json`): the resolved commit of every
hub repo and the sha256 of every URL file. A later `fetch` of the same config downloads exactly
those commits, so a second cluster gets the same bytes. Model repos are fetched without the
duplicate weight formats the workflow never reads (`original/` consolidated checkpoints, `*.bin`
or `*.pth` when safetensors exist), which halves what an 8B repo costs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixmerge import hub
from mixmerge.io import write_json

log = logging.getLogger(__name__)

LOCK_FORMAT = 1
# Weight formats a transformers/safetensors checkout never reads, when safetensors are present.
DUPLICATE_WEIGHTS = [
    "original/*",
    "*.pth",
    "*.bin",
    "*.pt",
    "*.gguf",
    "*.onnx*",
    "*.msgpack",
    "*.h5",
]


def lock_path(config_path: str | Path) -> Path:
    config_path = Path(config_path)
    return config_path.with_name(f"{config_path.stem}.lock.json")


def read_lock(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _ignore_patterns(siblings: Sequence[str]) -> list[str] | None:
    if any(name.endswith(".safetensors") for name in siblings):
        return DUPLICATE_WEIGHTS
    return ["original/*"]


def fetch_repo(art: hub.Artifact, mirror: Path, pinned: str | None) -> dict[str, Any]:
    """Download one hub repo at its locked commit (else its configured revision) into the mirror."""
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    revision = pinned or art.revision
    try:
        info = api.repo_info(art.id, repo_type=art.kind, revision=revision, files_metadata=False)
    except Exception as err:  # say which artifact, who reads it and what to do, in one line
        raise ValueError(_hub_error(art, revision, err)) from None
    commit = info.sha
    siblings = [s.rfilename for s in (info.siblings or [])]
    folder = hub.local_path(mirror, art.kind, art.id)
    log.info("fetching %s %s at %s into %s", art.kind, art.id, commit, folder)
    snapshot_download(
        art.id,
        repo_type=art.kind,
        revision=commit,
        local_dir=folder,
        ignore_patterns=_ignore_patterns(siblings) if art.kind == "model" else None,
    )
    return hub.snapshot_record(art.kind, art.id, folder, commit, art.revision)


def _hub_error(art: hub.Artifact, revision: str | None, err: Exception) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = art.describe()
    if isinstance(err, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return (
            f"{what} is gated: accept its terms on its hub page with your account, then set "
            "HF_TOKEN (or run `hf auth login`) before `mixmerge fetch`"
        )
    if isinstance(err, RevisionNotFoundError):
        return f"{what}: the hub has no revision {revision!r} of it"
    if isinstance(err, RepositoryNotFoundError):
        return f"{what}: no such {art.kind} repo on the hub (or it is private: set HF_TOKEN)"
    return f"{what}: {type(err).__name__}: {err}".splitlines()[0]


def fetch_url(art: hub.Artifact, mirror: Path, pinned: str | None) -> dict[str, Any]:
    target = hub.local_path(mirror, "url", art.id)
    expected = pinned or art.sha256
    if not (target.is_file() and (expected is None or hub.sha256_file(target) == expected)):
        log.info("downloading %s", art.id)
        hub.download(art.id, target)
    record = hub.url_record(art.id, target)
    if expected and record["sha256"] != expected:
        raise ValueError(f"{art.id}: sha256 is {record['sha256']}, expected {expected}")
    return record


def fetch(config: dict[str, Any], mirror: Path, lock_file: Path) -> dict[str, Any]:
    """Download every artifact of `config` into `mirror`; write and return the lock."""
    from tqdm import tqdm

    lock = read_lock(lock_file).get("artifacts", {})
    artifacts = hub.config_artifacts(config)
    records: dict[str, Any] = {}
    for art in tqdm(artifacts, desc="fetch", unit="artifact"):
        pinned = lock.get(art.key, {})
        if art.kind == "url":
            records[art.key] = fetch_url(art, mirror, pinned.get("sha256"))
        else:
            records[art.key] = fetch_repo(art, mirror, pinned.get("commit"))
        hub.write_manifest(mirror, {art.key: records[art.key]})  # progress survives a failure
    new_lock = lock_from_records(config, records)
    write_json(lock_file, new_lock)
    return new_lock


def lock_from_records(config: dict[str, Any], records: dict[str, Any]) -> dict[str, Any]:
    """The lock of a set of manifest records: commit per repo, sha256 per URL file."""
    artifacts = {}
    for key, record in sorted(records.items()):
        if record["kind"] == "url":
            artifacts[key] = {"sha256": record["sha256"]}
        else:
            artifacts[key] = {"revision": record.get("revision"), "commit": record["commit"]}
    return {"format": LOCK_FORMAT, "run": config.get("run"), "artifacts": artifacts}


def check(config: dict[str, Any], mirror: Path, lock_file: Path | None) -> list[str]:
    """Problems of `mirror` for `config` (and its lock), one line each; [] when all is well."""
    if not mirror.is_dir():
        return [f"the hub mirror {mirror} does not exist"]
    lock = read_lock(lock_file) if lock_file else {}
    return hub.check_mirror(hub.config_artifacts(config), mirror, lock)
