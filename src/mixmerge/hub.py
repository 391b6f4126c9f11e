"""Hub artifacts of a config, and the offline mirror that serves them on a machine with no network.

Every model, dataset and URL file a config reads from the network is an `Artifact`
(`mixmerge.fetch.config_artifacts`). `mixmerge fetch` downloads them into a mirror directory with
huggingface_hub's own `snapshot_download`; a config with `hub.mirror: DIR` (or the environment
variable `MIXMERGE_HUB_MIRROR`) then reads every one of them from DIR, with the hub switched off,
as HPC compute nodes require. Layout of a mirror:

    DIR/datasets/<owner>/<name>/     the files of a dataset repo at one commit, as on the hub
    DIR/models/<owner>/<name>/       the files of a model repo at one commit
    DIR/urls/<16 hex of sha256(url)>/<file name>    a file fetched by URL
    DIR/mirror.json                  what each entry holds: {key: {kind, id, commit | sha256, files}}

A dataset in the mirror loads with `datasets.load_dataset(<its folder>, name, split=...)`: the
library reads the repo's own card (`configs:` in README.md) or infers the splits from the file
names, exactly as it does on the hub. A model folder is an ordinary `from_pretrained` directory.

This module is core: it imports no stage. The per-benchmark hub facts (which hub datasets
lm-eval's built-in tasks read, evalplus's release URLs) are the benchmark declarations' `hub`
(mixmerge.catalog); `tests/test_hub.py` ties them to lm-eval's task files and evalplus's code.
Whether a mirror serves a config (`check_mirror`) is `mixmerge.fetch`'s.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.catalog import catalog
from mixmerge.io import cache_root, sha256_file

log = logging.getLogger(__name__)

MIRROR_ENV = "MIXMERGE_HUB_MIRROR"
MANIFEST = "mirror.json"
KINDS = ("dataset", "model", "url")


class MirrorError(ValueError):
    """An artifact the config needs is missing from the mirror, or is not what was asked for."""


@dataclass(frozen=True)
class Artifact:
    """One thing a config reads from the network."""

    kind: str  # dataset | model | url
    id: str  # hub repo id, or the URL
    revision: str | None = None  # as asked for in the config (branch, tag, commit; None = main)
    sha256: str | None = None  # url files: the hash the config pins, if any
    # dataset (config name, split) pairs read; split None = the repo only (lm-eval's groups)
    subsets: tuple[tuple[str | None, str | None], ...] = ()
    used_by: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def describe(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.kind} {self.id}{at} (used by {', '.join(self.used_by) or '?'})"


# Hub data the benchmarks read when their config block names no local `data_files`: each
# declaration's `hub` (mixmerge/evaluate/tasks/<id>.yaml). lm-eval's built-in task YAMLs
# (lm_eval/tasks/...: dataset_path, dataset_name), evalplus's release files
# (evalplus.data.utils.get_dataset_metadata, its default versions); tests/test_hub.py checks both.
# benchmark -> (hub dataset id, config names, splits lm-eval reads)
LM_EVAL_DATA: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    name: (d["path"], tuple(d["names"]), tuple(d["splits"]))
    for name, b in catalog().items()
    if b.runner == "lm_eval"
    for d in b.hub.get("datasets", ())
}
MMLU_SUBJECTS = LM_EVAL_DATA["mmlu"][1]
MATH_SUBJECTS = LM_EVAL_DATA["math"][1]
EVALPLUS_URLS = {
    name: b.hub["urls"][0] for name, b in catalog().items() if b.runner == "evalplus"
}


def is_url(spec: Any) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(("http://", "https://"))


def is_hub_id(path: Any) -> bool:
    """A hub repo id (owner/name), not a local path that exists or looks like one."""
    if not isinstance(path, str) or not path or is_url(path):
        return False
    if path.startswith((".", "/", "~")) or Path(path).exists():
        return False
    return path.count("/") == 1


# ------------------------------------------------------------------ the mirror


def mirror_dir(config: Mapping[str, Any] | None = None) -> Path | None:
    """The active mirror: `hub.mirror` of the config, else $MIXMERGE_HUB_MIRROR, else None."""
    configured = ((config or {}).get("hub") or {}).get("mirror")
    value = configured or os.environ.get(MIRROR_ENV)
    return Path(value).expanduser().resolve() if value else None


def activate(config: Mapping[str, Any]) -> Path | None:
    """Serve this process (and the processes it starts) from the config's mirror, hub off."""
    mirror = mirror_dir(config)
    if mirror is not None:
        os.environ[MIRROR_ENV] = str(mirror)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    return mirror


def url_folder(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def local_path(mirror: Path, kind: str, ident: str) -> Path:
    """Where an artifact lives inside a mirror."""
    if kind == "url":
        name = ident.rstrip("/").rsplit("/", 1)[-1] or "file"
        return mirror / "urls" / url_folder(ident) / name
    if kind not in ("dataset", "model"):
        raise ValueError(f"unknown artifact kind {kind!r} (known: {', '.join(KINDS)})")
    return mirror / f"{kind}s" / ident


def read_manifest(mirror: Path) -> dict[str, Any]:
    path = mirror / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("artifacts", {})


def write_manifest(mirror: Path, entries: Mapping[str, Any]) -> None:
    """Merge `entries` ({artifact key: record}) into the mirror's manifest, atomically."""
    from mixmerge.io import write_json

    current = read_manifest(mirror)
    current.update(entries)
    write_json(mirror / MANIFEST, {"format": 1, "artifacts": dict(sorted(current.items()))})


def download(url: str, target: Path, timeout: float = 120) -> Path:
    """Fetch a URL file to `target`, atomically (an interrupted download leaves nothing)."""
    import urllib.request

    from mixmerge.io import atomic_file

    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic_file(target, "wb") as out,
        ):
            while block := response.read(1 << 20):
                out.write(block)
    except OSError as err:
        raise RuntimeError(f"could not download {url}: {err}") from None
    return target


def snapshot_record(kind: str, ident: str, folder: Path, commit: str, revision: str | None) -> dict:
    """The manifest record of a repo folder: its commit and each file's size."""
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }
    return {"kind": kind, "id": ident, "revision": revision, "commit": commit, "files": files}


def url_record(url: str, path: Path) -> dict:
    return {"kind": "url", "id": url, "sha256": sha256_file(path), "size": path.stat().st_size}


def _active_mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None


def stands_in(record: Mapping[str, Any], pin: str, value: str | None) -> bool:
    """Whether a mirror entry is a rehearsal replica standing in for that pin ("revision" or
    "sha256" = value): its bytes are the replica's own, the pinned paper config runs on it."""
    return bool(value) and (record.get("stands_in_for") or {}).get(pin) == value


def revision_matches(record: Mapping[str, Any], revision: str | None) -> bool:
    """Whether a manifest record is the revision a config asks for (a commit, or its prefix, or
    the branch or tag it was fetched as; None and "main" are the default branch), or a rehearsal
    replica standing in for it."""
    if not revision or not record.get("commit") or stands_in(record, "revision", revision):
        return True
    held = record.get("revision") or "main"
    return record["commit"].startswith(revision) or held == revision


def _entry(mirror: Path, kind: str, ident: str, revision: str | None) -> Path:
    path = local_path(mirror, kind, ident)
    if not path.exists():
        at = f" at revision {revision}" if revision else ""
        raise MirrorError(
            f"{kind} {ident}{at} is not in the hub mirror {mirror} (expected {path}); "
            f"run `mixmerge fetch --config <config> --mirror {mirror}` where the hub is reachable"
        )
    record = read_manifest(mirror).get(f"{kind}:{ident}", {})
    if not revision_matches(record, revision):
        raise MirrorError(
            f"{kind} {ident}: the config asks for revision {revision}, the mirror {mirror} "
            f"holds commit {record.get('commit')} (revision {record.get('revision') or 'main'})"
        )
    return path


def model_source(path: str | Path, revision: str | None = None) -> tuple[str, str | None]:
    """(what to pass to `from_pretrained`, its revision): the mirror's folder for a hub id when a
    mirror is active (revision None: the folder is that revision), else the arguments as given."""
    mirror = _active_mirror()
    if mirror is None or not is_hub_id(str(path)):
        return str(path), revision
    return str(_entry(mirror, "model", str(path), revision)), None


def model_identity(path: str | Path, revision: str | None = None) -> str:
    """What names a model's outputs in caches: a local path as given; a hub id with the commit
    the active mirror holds, else with the configured revision, so a judge or reward model
    pinned to another revision never reuses the old one's cached replies."""
    if not is_hub_id(str(path)):
        return str(path)
    mirror = _active_mirror()
    commit = read_manifest(mirror).get(f"model:{path}", {}).get("commit") if mirror else None
    return f"{path}@{commit or revision or 'main'}"


def dataset_source(path: str, revision: str | None = None) -> tuple[str, str | None]:
    """As `model_source`, for a dataset repo."""
    mirror = _active_mirror()
    if mirror is None or not is_hub_id(path):
        return path, revision
    return str(_entry(mirror, "dataset", path, revision)), None


def url_file(url: str) -> Path | None:
    """The mirror's copy of a URL file, None without a mirror; missing from it is an error."""
    mirror = _active_mirror()
    if mirror is None:
        return None
    return _entry(mirror, "url", url, None)


def url_stands_in(url: str, sha256: str | None) -> bool:
    """Whether the active mirror's copy of `url` is a rehearsal replica standing in for the file
    with that sha256 (so the pin is not checked against the replica's own bytes)."""
    mirror = _active_mirror()
    if mirror is None or not sha256:
        return False
    return stands_in(read_manifest(mirror).get(f"url:{url}", {}), "sha256", sha256.lower())


# The datasets library's wording (5.x) for a bad split or config name, rephrased below.
_UNKNOWN_SPLIT = re.compile(r'Unknown split "(?P<asked>.*?)"\. Should be one of (?P<have>\[.*\])')
_UNKNOWN_CONFIG = re.compile(
    r"BuilderConfig '(?P<asked>.*?)' not found\. Available: (?P<have>\[.*\])"
)
_MISSING_CONFIG = re.compile(
    r"Config name is missing\..*?available configs: (?P<have>\[.*?\])", re.S
)


def _listed(text: str) -> str:
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return ", ".join(str(n) for n in names) or "none"


def rephrase_dataset_error(err: ValueError, label: str, key: str) -> MirrorError | None:
    """One line naming the dataset (`label`), the split or config asked for and the ones that
    exist, and the config key to fix (`key`.split / `key`.name); None if `err` is another error."""
    message = str(err)
    if match := _UNKNOWN_SPLIT.search(message):
        return MirrorError(
            f"dataset {label}: no split {match['asked']!r}; available splits: "
            f"{_listed(match['have'])} (set {key}.split)"
        )
    if match := _UNKNOWN_CONFIG.search(message):
        return MirrorError(
            f"dataset {label}: no config {match['asked']!r}; available configs: "
            f"{_listed(match['have'])} (set {key}.name)"
        )
    if match := _MISSING_CONFIG.search(message):
        return MirrorError(
            f"dataset {label}: a config name is needed; available configs: "
            f"{_listed(match['have'])} (set {key}.name)"
        )
    return None


def warn_unpinned(kind: str, ident: str, key: str) -> None:
    """Say which commit to pin for a hub repo the config reads at no revision (the mirror's
    record, else the hub's current commit; nothing when neither is known)."""
    commit = None
    mirror = _active_mirror()
    if mirror is not None:
        commit = read_manifest(mirror).get(f"{kind}:{ident}", {}).get("commit")
    else:
        try:
            from huggingface_hub import HfApi

            info = HfApi().repo_info(ident, repo_type=kind)
            commit = info.sha
        except Exception:  # offline or gated: the run goes on, only the hint is lost
            commit = None
    if commit:
        log.warning("%s %s is not pinned: set %s.revision: %s", kind, ident, key, commit)


def load_dataset(
    path: str,
    name: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    *,
    key: str = "the dataset",
):
    """`datasets.load_dataset` from the hub or the active mirror; a wrong split or config name
    fails with one line naming the dataset, what was asked for and what exists."""
    import datasets

    if revision is None and is_hub_id(path):
        warn_unpinned("dataset", path, key)
    source, revision = dataset_source(path, revision)
    try:
        return datasets.load_dataset(source, name, split=split, revision=revision)
    except ValueError as err:
        where = path + (f", config {name}" if name else "")
        clear = rephrase_dataset_error(err, where, key)
        if clear is None:
            raise
        raise clear from None


@contextlib.contextmanager
def mirrored_load_dataset() -> Iterator[None]:
    """While active, `datasets.load_dataset(<hub id>, ...)` reads the mirror's copy of the repo.

    For code that names hub ids we do not control: lm-eval's built-in task YAMLs. Without an
    active mirror this does nothing."""
    import datasets

    mirror = _active_mirror()
    if mirror is None:
        yield
        return
    original = datasets.load_dataset

    def load(path: str, *args: Any, **kwargs: Any):
        if is_hub_id(path):
            path, revision = dataset_source(path, kwargs.pop("revision", None))
            if revision:
                kwargs["revision"] = revision
        return original(path, *args, **kwargs)

    datasets.load_dataset = load
    try:
        yield
    finally:
        datasets.load_dataset = original


# ------------------------------------------------------------------ benchmark data files

def download_dir() -> Path:
    return cache_root() / "downloads"


def _download(url: str, expected: str | None) -> tuple[Path, str | None]:
    """(the local copy of a URL file, its sha256 if it was computed here): the mirror's copy,
    else a download into download_dir() (a cached copy that does not match is fetched again)."""
    mirrored = url_file(url)  # with a hub mirror, the file comes from it and nowhere else
    if mirrored is not None:
        return mirrored, None
    name = url.rstrip("/").rsplit("/", 1)[-1] or "file"
    target = download_dir() / url_folder(url) / name
    if target.is_file():
        if expected is None:
            return target, None
        actual = sha256_file(target)
        if actual == expected:
            return target, actual
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("MIXMERGE_OFFLINE") == "1":
        raise RuntimeError(
            f"offline and not downloaded yet: {url} (set data_files to a local copy)"
        )
    log.info("downloading %s", url)
    return download(url, target, timeout=60), None


def resolve_data_file(spec: str | Path, expected_sha256: str | None = None) -> tuple[Path, str]:
    """(local path, its sha256) for a path or URL; a hash mismatch is an error."""
    spec = str(spec)
    expected = expected_sha256.lower() if expected_sha256 else None
    path, known = _download(spec, expected) if is_url(spec) else (Path(spec), None)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark data file not found: {path}")
    actual = known or sha256_file(path)
    if expected is not None and actual != expected:
        if is_url(spec) and url_stands_in(spec, expected):
            log.warning("%s: a rehearsal replica (sha256 %s) stands in for %s", spec, actual, expected)
        else:
            raise ValueError(f"{spec}: sha256 is {actual}, config expects {expected}")
    elif expected is None and is_url(spec):
        log.warning("%s is not pinned: set its sha256 to %s in the config", spec, actual)
    return path, actual
