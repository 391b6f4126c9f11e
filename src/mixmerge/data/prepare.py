"""`mixmerge data`: load one dataset (hub or local files), convert to pairs, clean, write JSONL + stats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mixmerge.data.loaders import LOADERS
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
    max_pairs: int | None = None,
) -> dict[str, Any]:
    """Write the cleaned pairs of one dataset to `out` and `<out stem>.stats.json`; return the stats."""
    convert = LOADERS[ds_cfg["loader"]]
    rows = load_rows(ds_cfg)
    dropped: Counter[str] = Counter()
    seen_prompts: set[str] = set()
    pairs = []
    for row in rows:
        converted = list(convert(row))
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
    if max_pairs is not None and len(pairs) > max_pairs:
        dropped["over_max_pairs"] += len(pairs) - max_pairs
        pairs = pairs[:max_pairs]
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
