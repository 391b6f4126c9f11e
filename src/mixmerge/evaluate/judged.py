"""The runner of the single-turn judged benchmarks (HaluEval-Wild, SaladBench, OR-Bench, XSTest):
the model answers each item as one user turn, then the judge rates each answer with the
benchmark's prompt file (mixmerge/judge/prompts/<name>.yaml).

The declaration's `options` (mixmerge/evaluate/tasks/<id>.yaml) say everything else:
    data          defaults of the hub source: {path, name, split}; the config's `path`, `name`,
                  `split`, `revision` win, and `data_files` (a path or pinned URL, a list, or
                  {split: path}; `sha256` checks it) wins over the hub
    id            the row field that keys an item (samples, bootstrap)
    question      the row field the model is asked
    keep          more row fields copied into each sample
    judge_prompt  the prompt file; the config's `judge_prompt` may name another
    judge_fields  judge-template slot -> row field (the model's reply fills {response})
    positive      the verdicts that count as good: a list, or {by: <row field>, <value>: [...]}
                  when the good verdict depends on the item (XSTest: comply with a safe
                  prompt, refuse an unsafe one)
    metric        the score's name in the record (score = % good among parsed verdicts)
    breakdown     {record key: row field | [row fields]}: the score per value of that field
    subset        the samples' `subset` label of the main set (a hook may judge a second one)
    extra_sets    {config key: its hub-source defaults}: a second item set a hook judges alike
                  (OR-Bench's `toxic:` block), which `mixmerge fetch` mirrors too
    hook          a module for what is special: any of `load_rows(bench_cfg, bench)`,
                  `prepare(ctx)`, `sample_extras(row, verdict)`, `extend(ctx, record)`

Config keys (evaluate.benchmarks.<id>): data_files, sha256, path, name, split, revision, limit
(the first N items), generation and judge (overrides of evaluate.generation / evaluate.judge),
judge_prompt, and what a hook reads.
"""

from __future__ import annotations

import importlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mixmerge.catalog import Benchmark
from mixmerge.evaluate.data_files import read_json_or_jsonl, resolve_data_file
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import judge_config, load_prompt, run_judge, verdict_summary
from mixmerge.judge.base import Verdict
from mixmerge.judge.prompts import PromptTemplate
from mixmerge.runtime.generation import generate_chat, merged_generation_config

log = logging.getLogger(__name__)


def answer_and_judge(
    ctx: EvalContext,
    questions: Sequence[str],
    template: PromptTemplate,
    fields: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[Any], dict[str, Any]]:
    """(responses, verdicts, judge info): the judge prompt is `template`, rendered for item i with
    `fields[i]` and the model's `response`."""
    gen_cfg = merged_generation_config(ctx.eval_cfg, ctx.bench_cfg)
    responses = generate_chat(
        ctx.model_dir,
        [[{"role": "user", "content": q}] for q in questions],
        gen_cfg,
        ctx.eval_cfg["device"],
        cache=ctx.generations,
    )
    prompts = [
        template.render(**item, response=resp)
        for item, resp in zip(fields, responses, strict=True)
    ]
    cfg = judge_config(ctx.eval_cfg, ctx.bench_cfg, template.decoding)
    verdicts, info = run_judge(cfg, prompts, template.parser)
    return responses, verdicts, info


def hooks(bench: Benchmark) -> ModuleType | None:
    name = bench.options.get("hook")
    return importlib.import_module(name) if name else None


def _hook(bench: Benchmark, name: str) -> Any:
    module = hooks(bench)
    return getattr(module, name, None) if module else None


def _one_file(spec: Any, split: str | None, where: str) -> list[Any]:
    """The file(s) of a `data_files` value: a path or URL, a list of them, or {split: path}."""
    if isinstance(spec, Mapping):
        if split is None and len(spec) == 1:
            split = next(iter(spec))
        split = split or "train"
        if split not in spec:
            raise ValueError(f"{where}: data_files have no split {split!r} (have: {list(spec)})")
        spec = spec[split]
    return [spec] if isinstance(spec, (str, Path)) else list(spec)


def load_rows(
    bench_cfg: Mapping[str, Any], bench: Benchmark
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rows of the configured data and the sha256 of each file; every row has the field the
    model is asked (`question`)."""
    rows, sums = read_rows(bench_cfg, bench)
    question = bench.options["question"]
    for i, row in enumerate(rows):
        if question not in row:
            raise ValueError(f"{bench.id}: item {i} lacks its {question!r} field")
    return rows, sums


def read_rows(
    bench_cfg: Mapping[str, Any], bench: Benchmark
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rows of the configured data (local files or the hub) and the sha256 of each file."""
    where = f"evaluate.benchmarks.{bench.id}"
    source = {**(bench.options.get("data") or {}), **{k: v for k, v in bench_cfg.items() if v}}
    sums: dict[str, str] = {}
    if bench_cfg.get("data_files"):
        expected = bench_cfg.get("sha256")
        rows = []
        for i, spec in enumerate(_one_file(bench_cfg["data_files"], bench_cfg.get("split"), where)):
            want = expected if isinstance(expected, str) else (expected or {}).get("data")
            path, sums["data" if i == 0 else f"data{i}"] = resolve_data_file(spec, want)
            rows += read_json_or_jsonl(path)
        return rows, sums
    if not source.get("path"):
        raise ValueError(f"{where}: set data_files (no hub dataset is declared for it)")
    from mixmerge.hub import load_dataset

    ds = load_dataset(
        source["path"],
        source.get("name"),
        split=source.get("split") or "train",
        revision=source.get("revision"),
        key=where,
    )
    return list(ds), sums


def _breakdown(
    rows: Sequence[Mapping[str, Any]], good: Sequence[bool], verdicts: Sequence[Verdict], field: str
) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "parsed": 0, "good": 0})
    for row, ok, v in zip(rows, good, verdicts, strict=True):
        if row.get(field) is None:
            continue
        s = stats[str(row[field])]
        s["n"] += 1
        s["parsed"] += int(v.parsed)
        s["good"] += int(ok)
    return {
        value: {
            "n": s["n"],
            "n_parsed": s["parsed"],
            "score": 100.0 * s["good"] / s["parsed"] if s["parsed"] else None,
        }
        for value, s in sorted(stats.items())
    }


def judge_rows(
    ctx: EvalContext, rows: list[dict[str, Any]], template: PromptTemplate, subset: str | None
) -> dict[str, Any]:
    """Answer and judge `rows`; per-item records go to ctx.samples. Returns the score (% good
    among parsed verdicts), its breakdowns, the verdict summary and the judge's info."""
    bench = ctx.spec
    options = bench.options
    question = options["question"]
    slots = options.get("judge_fields") or {"question": question}
    responses, verdicts, info = answer_and_judge(
        ctx,
        [r[question] for r in rows],
        template,
        [{slot: r[field] for slot, field in slots.items()} for r in rows],
    )
    good = [
        v.parsed and v.label in bench.good_verdicts(r)
        for r, v in zip(rows, verdicts, strict=True)
    ]
    extras = _hook(bench, "sample_extras")
    kept = [options["id"], *(options.get("keep") or ()), question]
    for row, resp, v in zip(rows, responses, verdicts, strict=True):
        ctx.samples.append(
            {
                **({"subset": subset} if subset else {}),
                **{f: row.get(f) for f in dict.fromkeys(kept)},
                "response": resp,
                "verdict": v.label,
                "parsed": v.parsed,
                **(extras(row, v) if extras else {}),
                "judge_raw": v.raw,
            }
        )
    what = bench.id + (f" ({subset})" if subset else "")
    summary = verdict_summary(verdicts, template.parser, what)
    n_parsed = summary["n_parsed"]
    result: dict[str, Any] = {
        "score": 100.0 * sum(good) / n_parsed if n_parsed else None,
        "n": len(rows),
    }
    for key, fields in (options.get("breakdown") or {}).items():
        if isinstance(fields, str):
            result[key] = _breakdown(rows, good, verdicts, fields)
        else:
            result[key] = {f: _breakdown(rows, good, verdicts, f) for f in fields}
    return {**result, **summary, **info, **template.meta()}


def run(ctx: EvalContext) -> dict[str, Any]:
    """Score one single-turn judged benchmark (the registry's `judged` runner)."""
    bench = ctx.spec
    load = _hook(bench, "load_rows") or load_rows
    rows, sums = load(ctx.bench_cfg, bench)
    limit = ctx.bench_cfg.get("limit")
    if limit is not None:
        rows = rows[: int(limit)]
    if not rows:
        raise ValueError(f"{bench.id}: no items to evaluate")
    prepare = _hook(bench, "prepare")
    if prepare:
        ctx = prepare(ctx)
    template = load_prompt(ctx.bench_cfg.get("judge_prompt") or bench.options["judge_prompt"])
    part = judge_rows(ctx, rows, template, bench.options.get("subset"))
    record = {
        "benchmark": ctx.benchmark,
        "score": part.pop("score"),
        "n": part.pop("n"),
        "metric": bench.options["metric"],
        **part,
        "data_sha256": sums,
    }
    extend = _hook(bench, "extend")
    return extend(ctx, record) if extend else record
