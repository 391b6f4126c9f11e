"""OR-Bench (over-refusal): does the model answer seemingly toxic but benign prompts?

Data: bench-llm/or-bench, config or-bench-hard-1k (1,319 prompts; columns `prompt`, `category`).
Each prompt is sent as a single user turn; an LLM judge classifies the reply with OR-Bench's own
check-response prompt (mixmerge/judge/prompts/or_bench.yaml) into direct_answer / direct_refusal /
indirect_refusal. Score = acceptance rate = % direct_answer among parsed verdicts (higher = less
over-refusal), the paper's OR-Bench column.

bench_cfg keys (config `evaluate.benchmarks.or_bench`):
    data_files  local file(s) in the hub schema (str, list or {split: path}); wins over the hub
    path        hub dataset id                  default "bench-llm/or-bench"
    name        hub config                      default "or-bench-hard-1k"
    split       split to use                    default "train" (a local file's only split otherwise)
    revision    hub revision                    default null
    limit       keep the first N prompts        default null (all)
    generation  overrides of evaluate.generation for this benchmark   default {}
The judge is config `evaluate.judge` (see mixmerge.judge.make_judge); its `cache_dir` key, when
set, keeps API replies across runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mixmerge.evaluate.generation import generate_chat
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import load_prompt, make_judge, verdict_counts

log = logging.getLogger(__name__)

HUB_PATH = "bench-llm/or-bench"
HUB_NAME = "or-bench-hard-1k"
ACCEPT = "direct_answer"


def load_or_bench(bench_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """OR-Bench rows ({prompt, category}) from local data_files or the hub, first `limit` kept."""
    import datasets

    data_files = bench_cfg.get("data_files")
    split = bench_cfg.get("split")
    if data_files:
        loaded = datasets.load_dataset("json", data_files=data_files)
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        split = split or "train"
        if split not in loaded:
            raise ValueError(f"or_bench data_files have no split {split!r} (have: {list(loaded)})")
        ds = loaded[split]
    else:
        ds = datasets.load_dataset(
            bench_cfg.get("path") or HUB_PATH,
            bench_cfg.get("name") or HUB_NAME,
            split=split or "train",
            revision=bench_cfg.get("revision"),
        )
    if "prompt" not in ds.column_names:
        raise ValueError(f"or_bench data lacks a 'prompt' column (has: {ds.column_names})")
    limit = bench_cfg.get("limit")
    if limit is not None:
        ds = ds.select(range(min(int(limit), len(ds))))
    return [{"prompt": r["prompt"], "category": r.get("category")} for r in ds]


def or_bench(ctx: EvalContext) -> dict[str, Any]:
    rows = load_or_bench(ctx.bench_cfg)
    if not rows:
        raise ValueError("or_bench: no prompts to evaluate")
    gen_cfg = {**ctx.eval_cfg.get("generation", {}), **(ctx.bench_cfg.get("generation") or {})}
    responses = generate_chat(
        ctx.model_dir,
        [[{"role": "user", "content": r["prompt"]}] for r in rows],
        gen_cfg,
        ctx.eval_cfg["device"],
    )

    template = load_prompt("or_bench")
    judge_cfg = dict(ctx.eval_cfg.get("judge") or {})
    judge_cfg.setdefault("device", ctx.eval_cfg.get("device"))
    cache_dir = Path(judge_cfg["cache_dir"]) if judge_cfg.get("cache_dir") else None
    with make_judge(judge_cfg, cache_dir) as judge:
        verdicts = judge.classify(
            [
                template.render(question=r["prompt"], response=resp)
                for r, resp in zip(rows, responses, strict=True)
            ],
            template.labels,
        )
        judge_info = judge.describe()

    counts = verdict_counts(verdicts, template.labels)
    n_parsed = sum(counts.values())
    n_unparsed = len(verdicts) - n_parsed
    if n_unparsed:
        log.warning(
            "or_bench: %d of %d judge verdicts unparsable, left out of the score",
            n_unparsed,
            len(verdicts),
        )
    for row, resp, v in zip(rows, responses, verdicts, strict=True):
        ctx.samples.append(
            {
                "prompt": row["prompt"],
                "category": row["category"],
                "response": resp,
                "verdict": v.label,
                "parsed": v.parsed,
                "judge_raw": v.raw,
            }
        )
    accept = 100.0 * counts[ACCEPT] / n_parsed if n_parsed else None
    return {
        "benchmark": ctx.benchmark,
        "score": accept,
        "n": len(rows),
        "metric": "acceptance_rate",  # % direct_answer; higher = less over-refusal
        "rejection_rate": None if accept is None else 100.0 - accept,
        "counts": counts,
        "n_parsed": n_parsed,
        "n_unparsed": n_unparsed,
        **judge_info,
        "judge_prompt_source": template.source,
    }
