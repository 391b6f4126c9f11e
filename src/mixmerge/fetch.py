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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge import hub
from mixmerge.catalog import Benchmark, catalog
from mixmerge.io import write_json
from mixmerge.judge.settings import JudgeSettings, backend

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


# ------------------------------------------------------------------ what a config reads


class _Collector:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str | None], dict[str, Any]] = {}

    def add(self, kind: str, ident: str, where: str, revision: str | None = None, **extra: Any):
        entry = self.items.setdefault(
            (kind, ident, revision), {"used_by": [], "subsets": [], "sha256": None}
        )
        if where not in entry["used_by"]:
            entry["used_by"].append(where)
        for subset in extra.get("subsets", ()):
            if subset not in entry["subsets"]:
                entry["subsets"].append(subset)
        if extra.get("sha256"):
            entry["sha256"] = extra["sha256"]

    def model(self, spec: Mapping[str, Any] | None, where: str, key: str = "path") -> None:
        if spec and hub.is_hub_id(spec.get(key)):
            self.add("model", spec[key], where, spec.get("revision"))

    def artifacts(self) -> list[hub.Artifact]:
        return [
            hub.Artifact(
                kind,
                ident,
                revision,
                sha256=entry["sha256"],
                subsets=tuple(entry["subsets"]),
                used_by=tuple(entry["used_by"]),
            )
            for (kind, ident, revision), entry in self.items.items()
        ]


def _benchmark_data(
    found: _Collector, spec: Benchmark, cfg: Mapping[str, Any], where: str
) -> None:
    """The hub datasets and URL files one benchmark block reads (see the catalog's `hub`)."""
    files = cfg.get("data_files")
    if files:  # local files, or pinned URLs (MT-Bench's, HaluEval-Wild's)
        specs = files if isinstance(files, Mapping) else {"data": files}
        hashes = cfg.get("sha256") or {}
        hashes = hashes if isinstance(hashes, Mapping) else {"data": hashes}
        for part, value in specs.items():
            if hub.is_url(value):
                found.add("url", value, f"{where}.{part}", sha256=hashes.get(part))
        return
    source = spec.options.get("data")
    if source:  # a judged benchmark's configurable hub source
        path = cfg.get("path") or source["path"]
        subset = (cfg.get("name") or source.get("name"), cfg.get("split") or source["split"])
        found.add("dataset", path, where, cfg.get("revision"), subsets=[subset])
        return
    for data in spec.hub.get("datasets", ()):
        subsets = [(n, s) for n in data["names"] for s in data["splits"]]
        found.add("dataset", data["path"], where, subsets=subsets)
    for url in spec.hub.get("urls", ()):
        sha = cfg.get("sha256")
        found.add("url", url, where, sha256=sha if isinstance(sha, str) else None)


def _search_data(found: _Collector, config: Mapping[str, Any]) -> None:
    """What `mixmerge search dev-items` reads beyond the evaluated data: the held-out sources
    named by a declaration's `dev.data` (OR-Bench-80k), and the benchmarks only the search
    scores (search.benchmarks)."""
    search = config.get("search") or {}
    if not search:
        return
    evaluated = (config.get("evaluate") or {}).get("benchmarks") or {}
    extra = search.get("benchmarks") or {}
    for bench in dict.fromkeys([*evaluated, *extra]):
        spec, where = catalog()[bench], f"search.benchmarks.{bench}"
        if spec.dev_unavailable or bench in (search.get("exclude") or ()):
            continue
        source = dict(evaluated.get(bench) or {})
        if spec.dev.get("data"):  # another hub config than the reported one
            source = {k: v for k, v in source.items() if k != "data_files"} | dict(spec.dev["data"])
        elif bench in evaluated:
            continue  # its held-out items come from the data it is evaluated on: listed already
        _benchmark_data(found, spec, {**source, **dict(extra.get(bench) or {})}, where)


def config_artifacts(config: Mapping[str, Any]) -> list[hub.Artifact]:
    """Every hub repo and URL file the config's jobs will read, with who reads it."""
    found = _Collector()
    found.model(config.get("base_model"), "base_model")
    for name, ds in (config.get("datasets") or {}).items():
        if not ds.get("data_files") and hub.is_hub_id(ds.get("path")):
            subset = (ds.get("name"), ds.get("split", "train"))
            found.add(
                "dataset", ds["path"], f"datasets.{name}", ds.get("revision"), subsets=[subset]
            )
    mixtures = config.get("mixtures") or {}
    strategies = mixtures.get("strategies") or []
    if "armorm" in strategies:
        found.model((mixtures.get("armorm") or {}).get("reward_model"), "mixtures.armorm")
    hummer = mixtures.get("hummer") or {}
    if "hummer" in strategies and hummer.get("adc", "reward_models") == "reward_models":
        found.model(hummer.get("reward_models"), "mixtures.hummer.reward_models")
    evaluate = config.get("evaluate") or {}
    judges: dict[str, Mapping[str, Any]] = {}
    if "hummer" in strategies:
        judges["mixtures.hummer"] = (
            (mixtures.get("hummer") or {}).get("judge") or evaluate.get("judge") or {}
        )
    for bench, cfg in (evaluate.get("benchmarks") or {}).items():
        cfg, spec, where = cfg or {}, catalog()[bench], f"evaluate.benchmarks.{bench}"
        if spec.judged:
            judges[where] = {**(evaluate.get("judge") or {}), **(cfg.get("judge") or {})}
        _benchmark_data(found, spec, cfg, where)
        # a second item set judged alike (OR-Bench's toxic block): its own source
        for key, defaults in (spec.options.get("extra_sets") or {}).items():
            if cfg.get(key):
                inherited = {"path": cfg.get("path"), **defaults, **cfg[key]}
                _benchmark_data(found, spec, inherited, f"{where}.{key}")
    _search_data(found, config)
    for where, judge in judges.items():
        settings = JudgeSettings.from_config(judge)
        if backend(settings.backend).loads_model:
            found.model({"model": settings.model, "revision": settings.revision}, f"{where}.judge", key="model")
    return found.artifacts()


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
    artifacts = config_artifacts(config)
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
    return check_mirror(config_artifacts(config), mirror, lock)


# ------------------------------------------------------------------ does a mirror serve a config


def check_mirror(
    artifacts: list[hub.Artifact],
    mirror: Path,
    lock: Mapping[str, Any] | None = None,
    subsets: bool = True,
) -> list[str]:
    """Problems, one line each: artifacts missing from the mirror, files that are not what the
    manifest or the lock says, dataset config names and splits that do not exist."""
    manifest = hub.read_manifest(mirror)
    locked = (lock or {}).get("artifacts", {})
    problems: list[str] = []
    for art in artifacts:
        path = hub.local_path(mirror, art.kind, art.id)
        record = manifest.get(art.key)
        if not path.exists() or record is None:
            problems.append(f"missing: {art.describe()} (expected {path})")
            continue
        if art.kind == "url":
            actual = hub.sha256_file(path)
            for source, expected in (
                ("config", art.sha256),
                ("lock", locked.get(art.key, {}).get("sha256")),
            ):
                if expected and actual != expected and not hub.stands_in(record, "sha256", expected):
                    problems.append(
                        f"sha256 mismatch: {art.describe()}: {actual}, {source} pins {expected}"
                    )
            continue
        for rel, size in (record.get("files") or {}).items():
            file = path / rel
            if not file.is_file():
                problems.append(f"incomplete: {art.describe()}: {rel} is missing")
                break
            if file.stat().st_size != size:
                problems.append(
                    f"incomplete: {art.describe()}: {rel} has {file.stat().st_size} bytes, not {size}"
                )
                break
        commit = record.get("commit")
        pinned = locked.get(art.key, {}).get("commit")
        if pinned and commit != pinned:
            problems.append(
                f"commit mismatch: {art.describe()}: the mirror holds {commit}, the lock pins {pinned}"
            )
        if not hub.revision_matches(record, art.revision):
            held = record.get("revision") or "main"
            problems.append(
                f"revision mismatch: {art.describe()}: the mirror holds {commit} ({held})"
            )
        if art.kind == "dataset" and subsets:
            problems += _check_subsets(art, path)
    return problems


def card_configs(folder: Path) -> dict[str, list[str]] | None:
    """{config name: splits} from the `configs:` of a dataset repo's card (README.md front
    matter), which is what `datasets` builds the repo's configs from; None without one (the
    library then infers them from file names, and the check asks it instead)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return None
    import yaml

    front = yaml.safe_load(text[3:].split("\n---", 1)[0]) or {}
    entries = front.get("configs") if isinstance(front, dict) else None
    if not entries:
        return None
    configs: dict[str, list[str]] = {}
    for entry in entries:
        files = entry.get("data_files") or []
        if isinstance(files, (str, dict)):
            files = [files]
        splits = [f.get("split", "train") if isinstance(f, dict) else "train" for f in files]
        configs[entry.get("config_name", "default")] = splits
    return configs


def _check_subsets(art: hub.Artifact, path: Path) -> list[str]:
    """Config names and splits a dataset artifact is read with, against the repo's own card."""
    import datasets

    problems = []
    names = {name for name, _ in art.subsets}
    card = card_configs(path)
    try:
        configs = list(card) if card is not None else datasets.get_dataset_config_names(str(path))
    except Exception as err:  # an unreadable card or layout: say so instead of crashing the check
        return [f"unreadable: {art.describe()}: {type(err).__name__}: {err}".splitlines()[0]]
    for name in sorted(names, key=str):
        actual = configs[0] if name is None and len(configs) == 1 else name  # the default config
        if actual not in configs:
            problems.append(
                f"wrong config: {art.describe()}: config {name!r} does not exist "
                f"(configs: {', '.join(configs)})"
            )
            continue
        splits = [s for n, s in art.subsets if n == name and s is not None]
        if not splits:
            continue
        have = (
            card[actual]
            if card is not None
            else datasets.get_dataset_split_names(str(path), actual)
        )
        for split in splits:
            if split not in have:
                problems.append(
                    f"wrong split: {art.describe()}: config {name!r} has no split {split!r} "
                    f"(splits: {', '.join(have)})"
                )
    return problems
