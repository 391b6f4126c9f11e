"""`mixmerge data`: load one dataset (hub or local files), convert to pairs, clean, write JSONL + stats."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from mixmerge.data.loaders import LOADERS, REQUIRED_FIELDS
from mixmerge.data.settings import DatasetSettings, DataSettings
from mixmerge.io import write_json, write_jsonl


def load_rows(ds: DatasetSettings, name: str | None = None):
    """The dataset's rows: local `data_files` when given, else the hub (`path`, `name`, `revision`).

    `data_files` as a path or a list is one split (the datasets library calls it `train`; `split`
    is then the hub's and not used); as `{split: path}` the configured `split` is read from it.
    A split or config name the dataset does not have raises a one-line ValueError naming the
    dataset, the name asked for and the names that exist.
    """
    import datasets

    from mixmerge.hub import dataset_source, rephrase_dataset_error

    name = name or str(ds.path or "dataset")
    files = ds.data_files
    if files:
        if isinstance(files, dict):
            paths = list(files.values())
        else:
            paths = [files] if isinstance(files, str) else list(files)
            files = paths  # the datasets library takes a path or a list, not a tuple
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"dataset file not found: {path}")
        split = ds.split if isinstance(files, dict) else "train"
        where = "local data_files"
        args, kwargs = ("json",), {"data_files": files, "split": split}
    else:
        if not ds.path:
            raise ValueError(f"dataset {name!r}: neither data_files nor a hub path is set")
        where = ds.path + (f", config {ds.name}" if ds.name else "")
        source, revision = dataset_source(ds.path, ds.revision)  # hub or mirror
        args = (source, ds.name)
        kwargs = {"split": ds.split, "revision": revision}
    try:
        return datasets.load_dataset(*args, **kwargs)
    except ValueError as err:
        clear = rephrase_dataset_error(err, f"{name!r} ({where})", f"datasets.{name}")
        if clear is None:
            raise
        raise clear from None


def _empty(text: str) -> bool:
    return not text.strip()


def prepare_dataset(
    name: str,
    ds: DatasetSettings,
    group: str,
    out: str | Path,
    settings: DataSettings | None = None,
) -> dict[str, Any]:
    """Write the cleaned pairs of one dataset to `out` and `<out stem>.stats.json`; return the stats.

    Cleaning, each rule counted in the stats: a pair is dropped (`dropped.<rule>`) for an empty
    prompt, an empty user/assistant turn or answer (`empty_turn`), chosen = rejected, over
    `max_chars`, or a repeat under `dedup` (`duplicate_pair` / `duplicate_prompt`, see
    mixmerge.data.settings.DEDUP_MODES); an empty or whitespace-only system turn (as in the Orca
    set) is removed and the pair kept (`modified.empty_system_turn_removed`, counted over the
    pairs written). A row that does not fit the loader's schema raises (naming dataset, row and
    field), or with `on_bad_row: skip` is counted under `dropped.bad_row`. The dataset's
    `max_samples` keeps a seeded random sample of the cleaned pairs. `settings` is config `data`
    (DataSettings() when not given).
    """
    settings = settings or DataSettings()
    max_chars, dedup = settings.max_chars, settings.dedup
    convert = LOADERS[ds.loader]
    rows = load_rows(ds, name)
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, ...]] = set()
    pairs, changes = [], []  # changes[i]: the `modified` rules that changed pairs[i]
    for index, row in enumerate(rows):
        try:
            for field in REQUIRED_FIELDS[ds.loader]:
                if row.get(field) is None:
                    raise KeyError(field)
            converted = list(convert(row))
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            field = err.args[0] if err.args else type(err).__name__
            if settings.on_bad_row == "skip":
                dropped["bad_row"] += 1
                continue
            raise ValueError(
                f"dataset {name!r} (loader {ds.loader}): row {index} does not fit the schema "
                f"(field {field!r})"
            ) from None
        if not converted:
            dropped["unusable_row"] += 1
        for prompt, chosen, rejected in converted:
            kept = [m for m in prompt if not (m["role"] == "system" and _empty(m["content"]))]
            if not kept:
                dropped["empty_prompt"] += 1
                continue
            if _empty(chosen) or _empty(rejected) or any(_empty(m["content"]) for m in kept):
                dropped["empty_turn"] += 1
                continue
            if chosen.strip() == rejected.strip():
                dropped["chosen_equals_rejected"] += 1
                continue
            prompt_chars = sum(len(m["content"]) for m in kept)
            if max_chars and prompt_chars + max(len(chosen), len(rejected)) > max_chars:
                dropped["over_length"] += 1
                continue
            if dedup != "none":
                key = tuple(f"{m['role']}:{m['content']}" for m in kept)
                if dedup == "pair":
                    key += (f"chosen:{chosen}", f"rejected:{rejected}")
                if key in seen:
                    dropped[f"duplicate_{dedup}"] += 1
                    continue
                seen.add(key)
            pairs.append(
                {
                    "prompt": kept,
                    "chosen": chosen,
                    "rejected": rejected,
                    "source": name,
                    "dimension": group,
                }
            )
            changes.append(("empty_system_turn_removed",) if len(kept) < len(prompt) else ())
    max_samples = ds.max_samples
    if max_samples is not None and len(pairs) > max_samples:
        dropped["over_max_samples"] += len(pairs) - max_samples
        keep = sorted(random.Random(settings.seed).sample(range(len(pairs)), max_samples))
        pairs, changes = [pairs[i] for i in keep], [changes[i] for i in keep]
    modified = Counter(rule for rules in changes for rule in rules)
    if not pairs:
        raise ValueError(
            f"dataset {name!r}: no usable pairs after cleaning (dropped: {dict(dropped)})"
        )
    out = Path(out)
    stats = {
        "dataset": name,
        "group": group,
        "rows": len(rows),
        "pairs": len(pairs),
        "dedup": dedup,
        "dropped": dict(sorted(dropped.items())),
        "modified": dict(sorted(modified.items())),
    }
    write_jsonl(out, pairs)
    write_json(out.with_suffix(".stats.json"), stats)
    return stats
