"""Held-out ("dev") items for `mixmerge search`: disjoint, by content, from every reported item.

A search that tunes merge coefficients on the items the tables report would report a tuned-on-test
number. So the search scores each benchmark on items its declaration's `dev` block names
(mixmerge/evaluate/tasks/<id>.yaml), and this module writes them as local files that the
benchmark's own runner scores unchanged (same prompts, shots, judge and metric):

- lm_eval benchmarks: a seeded sample of another split of the same source (GSM8K and MATH train,
  ARC and MMLU validation; TruthfulQA's one split only while it is not reported). It replaces
  the scored split; when it is also the few-shot split (GSM8K), the sampled rows are removed
  from the shots' pool, so no item is shown as its own example.
- judged benchmarks: a seeded sample of the source's items outside the reported ones (SaladBench's
  base_set outside the reported `sample_size` sample), or of another hub config (`data`:
  OR-Bench-80k outside all of hard-1k, whatever `limit` the tables use). OR-Bench's toxic set has no such source: the dev score is the
  main set's only.

Every dev row whose identifying text (`dev.key`) hashes like a reported item's is dropped
(`content_hash`): splits of one source can share items (hard-1k is drawn from the 80k). A
benchmark without a source (`dev: {unavailable: why}`) is left out of the objectives, and the
manifest says why. Files: `<out>/<id>/...` and `<out>/manifest.json`.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.catalog import Benchmark, benchmark
from mixmerge.evaluate.data_files import read_json_or_jsonl
from mixmerge.hub import mirror_dir
from mixmerge.io import write_json, write_jsonl

MANIFEST = "manifest.json"
# Keys of a judged benchmark's config that pick its reported items, not its source's
_SAMPLING_KEYS = ("sample_size", "limit", "toxic", "sha256")


def content_hash(text: Any) -> str:
    """The identity of an item: sha256 of its identifying text, whitespace-normalised."""
    return hashlib.sha256(" ".join(str(text).split()).encode("utf-8")).hexdigest()


def _sample(rows: list[dict[str, Any]], n: int | None, seed: int, name: str) -> list[int]:
    """Indices of a seeded sample of `n` rows (all when n is None), in data order."""
    if n is None or n >= len(rows):
        return list(range(len(rows)))
    return sorted(random.Random(f"{seed}:{name}").sample(range(len(rows)), n))


def _unique_outside(
    rows: Sequence[dict[str, Any]], key: str, reported: set[str], where: str
) -> list[dict[str, Any]]:
    """Rows whose item is not reported, the first of each item only."""
    seen = set(reported)
    kept = []
    for i, row in enumerate(rows):
        if key not in row:
            raise ValueError(f"{where}: row {i} lacks its identifying field {key!r}")
        h = content_hash(row[key])
        if h not in seen:
            seen.add(h)
            kept.append(row)
    return kept


# --- lm-eval benchmarks -----------------------------------------------------------------------


def _lm_eval_split(bench: Benchmark, bench_cfg: Mapping[str, Any], split: str) -> list[dict]:
    """The rows of one split: from the config's data_files, else the declared hub datasets (every
    config name of them concatenated: MMLU's 57 subjects, MATH's 7 types)."""
    files = bench_cfg.get("data_files") or {}
    if files:
        if split not in files:
            raise ValueError(
                f"search: {bench.id} needs its {split!r} split in evaluate.benchmarks.{bench.id}"
                f".data_files (or search.benchmarks.{bench.id}.data_files) for its held-out items"
            )
        paths = files[split] if isinstance(files[split], list) else [files[split]]
        return [row for p in paths for row in read_json_or_jsonl(Path(p))]
    rows: list[dict] = []
    for data in bench.hub.get("datasets", ()):
        for name in data["names"]:
            rows += [dict(r) for r in _hub_config(data["path"], name, mirror_dir())[split]]
    return rows


@functools.cache
def _hub_config(path: str, name: str, mirror: Path | None) -> Any:
    """Every split of one hub config, loaded once per mirror (MMLU's 57 configs are read for
    three splits): the copy lm-eval's own task reads, the mirror's when one is active."""
    import datasets

    from mixmerge.hub import mirrored_load_dataset

    with mirrored_load_dataset():
        return datasets.load_dataset(path, name)


def _lm_eval_dev(
    bench: Benchmark, bench_cfg: Mapping[str, Any], reported: bool, n: int | None, seed: int,
    out: Path,
) -> tuple[dict[str, Any], list[str], list[str]]:
    from mixmerge.evaluate.lm_eval_tasks import SPECS

    spec, dev = SPECS[bench.id], bench.dev
    split, key = dev["split"], dev["key"]
    scored = spec.eval_split
    source = _lm_eval_split(bench, bench_cfg, split)
    test_rows: list[dict] = []
    if reported and split != scored:
        test_rows = _lm_eval_split(bench, bench_cfg, scored)
    elif reported:  # one split for both: the table reports its first `limit` rows (lm-eval's)
        limit = bench_cfg.get("limit")
        if limit is None or not float(limit).is_integer():
            raise ValueError(
                f"search: {bench.id} reports every row of its one split {split!r}: set an integer "
                f"evaluate.benchmarks.{bench.id}.limit to hold the rest out, or leave it out of "
                "evaluate.benchmarks or of search.benchmarks"
            )
        test_rows = source[: int(limit)]
    test_keys = {content_hash(r[key]) for r in test_rows}
    pool = _unique_outside(source, key, test_keys, bench.id)
    chosen = set(_sample(pool, n, seed, bench.id))
    dev_rows = [r for i, r in enumerate(pool) if i in chosen]
    files: dict[str, str] = {}
    target = out / bench.id
    write_jsonl(target / f"{split}.dev.jsonl", dev_rows)
    files[scored] = str(target / f"{split}.dev.jsonl")
    for shots in spec.fewshot_splits:  # the few-shot pools, the sampled items removed
        if shots == scored:
            continue
        rows = [r for i, r in enumerate(pool) if i not in chosen] if shots == split else (
            _lm_eval_split(bench, bench_cfg, shots) if _has_split(bench, bench_cfg, shots) else []
        )
        if rows:
            write_jsonl(target / f"{shots}.shots.jsonl", rows)
            files[shots] = str(target / f"{shots}.shots.jsonl")
    dev_cfg = {**dict(bench_cfg), "data_files": files, "limit": None}
    return dev_cfg, [content_hash(r[key]) for r in dev_rows], sorted(test_keys)


def _has_split(bench: Benchmark, bench_cfg: Mapping[str, Any], split: str) -> bool:
    files = bench_cfg.get("data_files") or {}
    if files:
        return split in files
    return any(split in d["splits"] for d in bench.hub.get("datasets", ()))


# --- judged benchmarks ------------------------------------------------------------------------


def _judged_dev(
    bench: Benchmark, bench_cfg: Mapping[str, Any], reported: bool, n: int | None, seed: int,
    out: Path, source_cfg: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str], list[str]]:
    from mixmerge.evaluate.judged import _hook, load_rows

    key = bench.dev["key"]
    load = _hook(bench, "load_rows") or load_rows
    test_keys: set[str] = set()
    if reported and bench.dev.get("data"):  # another source: all of the reported set is out
        rows, _ = load({k: v for k, v in bench_cfg.items() if k not in _SAMPLING_KEYS}, bench)
        test_keys = {content_hash(r[key]) for r in rows}
    elif reported:  # the same source: the items the table reports, as the runner picks them
        rows, _ = load(bench_cfg, bench)
        if bench_cfg.get("limit") is not None:
            rows = rows[: int(bench_cfg["limit"])]
        test_keys = {content_hash(r[key]) for r in rows}
    source = {k: v for k, v in bench_cfg.items() if k not in _SAMPLING_KEYS}
    if bench.dev.get("data"):  # another hub config: the reported files are not its source
        source = {k: v for k, v in source.items() if k != "data_files"}
        source.update(bench.dev["data"])
    source.update(source_cfg)
    pool, _ = load(source, bench)
    pool = _unique_outside(pool, key, test_keys, bench.id)
    chosen = _sample(pool, n, seed, bench.id)
    dev_rows = [pool[i] for i in chosen]
    path = out / bench.id / "dev.jsonl"
    write_jsonl(path, dev_rows)
    dev_cfg = {
        **{k: v for k, v in bench_cfg.items() if k not in _SAMPLING_KEYS},
        "data_files": str(path),
        "split": None,
    }
    return dev_cfg, [content_hash(r[key]) for r in dev_rows], sorted(test_keys)


# --- all of them ------------------------------------------------------------------------------


def dev_sources(
    configured: Mapping[str, Any], extra: Mapping[str, Any], exclude: Sequence[str] = ()
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(benchmark -> its config for the dev items, benchmark -> why it is left out).

    `configured` is evaluate.benchmarks; the dev benchmarks are those of them with a held-out
    source, less `exclude` (search.exclude), plus `extra` (search.benchmarks: id -> overrides of
    its config, or the config of one that is not evaluated, e.g. TruthfulQA as an honesty
    objective).
    """
    chosen: dict[str, dict[str, Any]] = {}
    left_out: dict[str, str] = {}
    for name in dict.fromkeys([*configured, *extra]):
        bench = benchmark(name)
        if name in exclude:
            left_out[name] = "search.exclude"
        elif bench.dev_unavailable:
            if name in extra:
                raise ValueError(f"search.benchmarks.{name}: no held-out items ({bench.dev_unavailable})")
            left_out[name] = bench.dev_unavailable
        else:
            chosen[name] = {**dict(configured.get(name) or {}), **dict(extra.get(name) or {})}
    return chosen, left_out


def write_dev_items(
    configured: Mapping[str, Any],
    extra: Mapping[str, Any],
    exclude: Sequence[str],
    n_items: int | None,
    seed: int,
    out: str | Path,
) -> dict[str, Any]:
    """Write every dev benchmark's held-out items under `out` and the manifest; return it.

    The manifest: {benchmarks: {id: {group, config (as the runner scores it), n, dev_items
    (content hashes), reported_items (hashes of what the table reports)}}, left_out: {id: why}}.
    """
    out = Path(out)
    chosen, left_out = dev_sources(configured, extra, exclude)
    entries: dict[str, Any] = {}
    for name, cfg in chosen.items():
        bench = benchmark(name)
        reported = name in configured
        overrides = dict(extra.get(name) or {})
        test_cfg = dict(configured.get(name) or cfg)
        if bench.runner == "lm_eval":
            dev_cfg, dev_keys, test_keys = _lm_eval_dev(bench, cfg, reported, n_items, seed, out)
        elif bench.runner == "judged":
            dev_cfg, dev_keys, test_keys = _judged_dev(
                bench, test_cfg, reported, n_items, seed, out, overrides
            )
        else:
            raise ValueError(f"search: no held-out items for runner {bench.runner!r} ({name})")
        if not dev_keys:
            raise ValueError(
                f"search: {name} has no held-out items left (every item of its source is "
                f"reported{'; set its sample_size below the source size' if bench.runner == 'judged' else ''})"
            )
        entries[name] = {
            "group": bench.group,
            "config": dev_cfg,
            "n": len(dev_keys),
            "dev_items": dev_keys,
            "reported_items": test_keys,
        }
    manifest = {"benchmarks": entries, "left_out": left_out, "n_items": n_items, "seed": seed}
    write_json(out / MANIFEST, manifest)
    return manifest
