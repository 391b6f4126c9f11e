"""Shared helpers of the replica builders: files in the hub's formats, deterministic text, hashes.

Everything here is offline and deterministic: the same seed writes byte-identical files (parquet
through `datasets`, JSON with fixed separators, gzip with mtime 0), so a replica's commit (a sha1
over its files) only changes when its content does.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mixmerge
from mixmerge.tiny import text

SAMPLES_ENV = "MIXMERGE_UPSTREAM_SAMPLES"

Row = dict[str, Any]


class RehearsalError(RuntimeError):
    """A replica cannot be built (no builder for an artifact, or missing upstream samples)."""


# ------------------------------------------------------------------ upstream samples


def upstream_samples() -> Path:
    """The folder of real upstream rows: $MIXMERGE_UPSTREAM_SAMPLES, else ../shared/upstream-samples
    of the repository root (Path(mixmerge.__file__).parents[3] / "shared")."""
    value = os.environ.get(SAMPLES_ENV)
    folder = (
        Path(value).expanduser()
        if value
        else Path(mixmerge.__file__).resolve().parents[3] / "shared" / "upstream-samples"
    )
    if not folder.is_dir():
        raise RehearsalError(
            f"the upstream samples folder {folder} does not exist: the rehearsal mirror copies "
            f"real benchmark files (MT-Bench, HaluEval-Wild, evalplus, GSM8K) from it; check out "
            f"the shared/ folder next to the repository or set {SAMPLES_ENV}"
        )
    return folder


def sample_file(relative: str) -> Path:
    path = upstream_samples() / relative
    if not path.is_file():
        raise RehearsalError(f"upstream sample {path} is missing (needed by the rehearsal mirror)")
    return path


# ------------------------------------------------------------------ hashes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_commit(folder: Path) -> str:
    """A deterministic 40-hex "commit" of a replica folder: sha1 over (path, sha256) of its files."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if ".cache" in Path(rel).parts:
            continue
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{rel}\0{file_hash}\n".encode())
    return digest.hexdigest()


def rng_for(seed: int, *parts: str) -> random.Random:
    """A Random seeded from the seed and a name (str seeds hash deterministically)."""
    return random.Random(":".join([str(seed), *parts]))


# ------------------------------------------------------------------ deterministic text


def prompt_id(prompt: str) -> str:
    """UltraFeedback-style prompt_id: the sha256 of the prompt text."""
    return sha256_bytes(prompt.encode("utf-8"))


def long_text(rng: random.Random, min_chars: int = 17000) -> str:
    """Word salad longer than the paper's 16,000-character / 4,096-token limits."""
    parts: list[str] = []
    size = 0
    while size < min_chars:
        piece = text.paragraph(rng, 6)
        parts.append(piece)
        size += len(piece) + 2
    return "\n\n".join(parts)


def answer(rng: random.Random, sentences: int = 3) -> str:
    return f"{text.paragraph(rng, sentences)}"


def python_answer(rng: random.Random, good: bool) -> str:
    """A Python answer as Py-DPO has them (markdown code fence); the bad one is buggy or vague."""
    name = rng.choice(["total", "count_items", "merge", "average", "reverse_words"])
    body = (
        "    result = 0\n    for value in values:\n        result += value\n    return result"
        if good
        else "    return values[0]  # only looks at the first value"
    )
    return (
        f"Here is a function for that:\n\n```python\ndef {name}(values):\n{body}\n```\n\n"
        f"{text.sentence(rng)}"
    )


# ------------------------------------------------------------------ files in the hub's formats


def write_parquet(path: Path, rows: Sequence[Row], features: Any) -> int:
    """One parquet shard as `push_to_hub` writes it (arrow schema + `huggingface` features
    metadata); returns the split's arrow size (the card's `num_bytes`)."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(list(rows), features=features)
    table.to_parquet(str(path))
    return int(table.data.nbytes)


def write_json_lines(path: Path, rows: Iterable[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json_array(path: Path, rows: Sequence[Row], indent: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows), ensure_ascii=False, indent=indent), encoding="utf-8")


def write_csv(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in columns})


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=1000)


def write_card(
    folder: Path,
    front_matter: Mapping[str, Any] | None,
    body: str,
) -> None:
    """README.md with YAML front matter (`configs:`, `dataset_info:` ...) and a body."""
    folder.mkdir(parents=True, exist_ok=True)
    head = f"---\n{_yaml(dict(front_matter))}---\n\n" if front_matter else ""
    (folder / "README.md").write_text(head + body.strip() + "\n", encoding="utf-8")


def features_yaml(features: Any) -> list[dict[str, Any]]:
    """`dataset_info.features` as the hub's cards write them (datasets' own YAML form)."""
    from datasets.info import DatasetInfo

    return DatasetInfo(features=features)._to_yaml_dict()["features"]


def split_info(
    rows_by_split: Mapping[str, Sequence[Row]], sizes: Mapping[str, int]
) -> list[dict[str, Any]]:
    """`dataset_info.splits` entries: name, num_bytes, num_examples."""
    return [
        {"name": name, "num_bytes": int(sizes[name]), "num_examples": len(rows)}
        for name, rows in rows_by_split.items()
    ]


def parquet_config(
    folder: Path,
    config: str,
    rows_by_split: Mapping[str, Sequence[Row]],
    features: Any,
    directory: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `<directory>/<split>-00000-of-00001.parquet` for each split; return the card's
    (`configs` entry, `dataset_info` entry) for this config."""
    directory = directory or config
    sizes = {
        split: write_parquet(folder / directory / f"{split}-00000-of-00001.parquet", rows, features)
        for split, rows in rows_by_split.items()
    }
    entry = {
        "config_name": config,
        "data_files": [
            {"split": split, "path": f"{directory}/{split}-*"} for split in rows_by_split
        ],
    }
    info = {
        "config_name": config,
        "features": features_yaml(features),
        "splits": split_info(rows_by_split, sizes),
        "dataset_size": sum(sizes.values()),
    }
    return entry, info
