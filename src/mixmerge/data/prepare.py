"""`mixmerge data`: load one dataset (hub or local files), convert to pairs, clean, write JSONL + stats."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from mixmerge.data.loaders import LOADERS, REQUIRED_FIELDS
from mixmerge.io import write_json, write_jsonl


def load_rows(ds_cfg: dict[str, Any]):
    """The dataset's rows: local `data_files` when given, else the hub (`path`, `name`, `revision`)."""
    import datasets

    if ds_cfg.get("data_files"):
        files = ds_cfg["data_files"]
        for path in [files] if isinstance(files, str) else list(files):
            if not Path(path).is_file():
                raise FileNotFoundError(f"dataset file not found: {path}")
        return datasets.load_dataset("json", data_files=files, split="train")
    return datasets.load_dataset(
        ds_cfg["path"],
        ds_cfg.get("name"),
        split=ds_cfg.get("split", "train"),
        revision=ds_cfg.get("revision"),
    )


def prepare_dataset(
    name: str,
    ds_cfg: dict[str, Any],
    group: str,
    out: str | Path,
    max_chars: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    on_bad_row: str = "error",
) -> dict[str, Any]:
    """Write the cleaned pairs of one dataset to `out` and `<out stem>.stats.json`; return the stats.

    A row that does not fit the loader's schema raises (naming dataset, row and field), or with
    `on_bad_row: skip` is counted under `dropped.bad_row`. `max_samples` keeps a seeded random
    sample of the cleaned pairs.
    """
    convert = LOADERS[ds_cfg["loader"]]
    rows = load_rows(ds_cfg)
    dropped: Counter[str] = Counter()
    seen_prompts: set[str] = set()
    pairs = []
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
            if (
                not chosen.strip()
                or not rejected.strip()
                or any(not m["content"].strip() for m in prompt)
            ):
                dropped["empty_turn"] += 1
                continue
            if chosen.strip() == rejected.strip():
                dropped["chosen_equals_rejected"] += 1
                continue
            prompt_chars = sum(len(m["content"]) for m in prompt)
            if max_chars and prompt_chars + max(len(chosen), len(rejected)) > max_chars:
                dropped["over_length"] += 1
                continue
            key = "\x1f".join(f"{m['role']}:{m['content']}" for m in prompt)
            if key in seen_prompts:
                dropped["duplicate_prompt"] += 1
                continue
            seen_prompts.add(key)
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "source": name,
                    "dimension": group,
                }
            )
    if max_samples is not None and len(pairs) > max_samples:
        dropped["over_max_samples"] += len(pairs) - max_samples
        keep = sorted(random.Random(seed).sample(range(len(pairs)), max_samples))
        pairs = [pairs[i] for i in keep]
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
        "dropped": dict(sorted(dropped.items())),
    }
    write_jsonl(out, pairs)
    write_json(out.with_suffix(".stats.json"), stats)
    return stats
