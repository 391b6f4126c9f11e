"""`mixmerge data`: load one dataset (hub or local files), convert to pairs, clean, write JSONL + stats."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from mixmerge.data.loaders import LOADERS, REQUIRED_FIELDS
from mixmerge.io import write_json, write_jsonl

# `data.dedup`: which repeats within one dataset are dropped. `pair`: exact duplicate pairs (same
# prompt, chosen and rejected), so a prompt with several distinct pairs (PKU-SafeRLHF, Nectar)
# keeps them all, as the paper trains on the full data; `prompt`: only the first pair per prompt;
# `none`: nothing.
DEDUP_MODES = ("pair", "prompt", "none")

def load_rows(ds_cfg: dict[str, Any], name: str | None = None):
    """The dataset's rows: local `data_files` when given, else the hub (`path`, `name`, `revision`).

    `data_files` as a path or a list is one split (the datasets library calls it `train`; `split`
    is then the hub's and not used); as `{split: path}` the configured `split` is read from it.
    A split or config name the dataset does not have raises a one-line ValueError naming the
    dataset, the name asked for and the names that exist.
    """
    import datasets

    from mixmerge.hub import dataset_source, rephrase_dataset_error

    name = name or str(ds_cfg.get("path") or "dataset")
    files = ds_cfg.get("data_files")
    if files:
        paths = [files] if isinstance(files, str) else list(files)
        if isinstance(files, dict):
            paths = list(files.values())
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"dataset file not found: {path}")
        split = ds_cfg.get("split", "train") if isinstance(files, dict) else "train"
        where = "local data_files"
        args, kwargs = ("json",), {"data_files": files, "split": split}
    else:
        split = ds_cfg.get("split", "train")
        where = str(ds_cfg["path"]) + (f", config {ds_cfg['name']}" if ds_cfg.get("name") else "")
        source, revision = dataset_source(ds_cfg["path"], ds_cfg.get("revision"))  # hub or mirror
        args = (source, ds_cfg.get("name"))
        kwargs = {"split": split, "revision": revision}
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
    ds_cfg: dict[str, Any],
    group: str,
    out: str | Path,
    max_chars: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    on_bad_row: str = "error",
    dedup: str = "pair",
) -> dict[str, Any]:
    """Write the cleaned pairs of one dataset to `out` and `<out stem>.stats.json`; return the stats.

    Cleaning, each rule counted in the stats: a pair is dropped (`dropped.<rule>`) for an empty
    prompt, an empty user/assistant turn or answer (`empty_turn`), chosen = rejected, over
    `max_chars`, or a repeat under `dedup` (`duplicate_pair` / `duplicate_prompt`, see
    DEDUP_MODES); an empty or whitespace-only system turn (as in the Orca set) is removed and the
    pair kept (`modified.empty_system_turn_removed`, counted over the pairs written). A row that
    does not fit the loader's schema raises (naming dataset, row and field), or with
    `on_bad_row: skip` is counted under `dropped.bad_row`. `max_samples` keeps a seeded random
    sample of the cleaned pairs.
    """
    if dedup not in DEDUP_MODES:
        raise ValueError(
            f"dataset {name!r}: unknown dedup mode {dedup!r} (data.dedup: {', '.join(DEDUP_MODES)})"
        )
    convert = LOADERS[ds_cfg["loader"]]
    rows = load_rows(ds_cfg, name)
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, ...]] = set()
    pairs, changes = [], []  # changes[i]: the `modified` rules that changed pairs[i]
    for index, row in enumerate(rows):
        try:
            for field in REQUIRED_FIELDS[ds_cfg["loader"]]:
                if row.get(field) is None:
                    raise KeyError(field)
            converted = list(convert(row))
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            field = err.args[0] if err.args else type(err).__name__
            if on_bad_row == "skip":
                dropped["bad_row"] += 1
                continue
            raise ValueError(
                f"dataset {name!r} (loader {ds_cfg['loader']}): row {index} does not fit the schema "
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
    if max_samples is not None and len(pairs) > max_samples:
        dropped["over_max_samples"] += len(pairs) - max_samples
        keep = sorted(random.Random(seed).sample(range(len(pairs)), max_samples))
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
