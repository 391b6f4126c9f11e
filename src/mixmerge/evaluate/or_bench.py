"""OR-Bench's hook on the judged runner (evaluate/tasks/or_bench.yaml): its judge, the toxic set.

OR-Bench (over-refusal): does the model answer seemingly toxic but benign prompts?

Data: bench-llm/or-bench, config or-bench-hard-1k (1,319 prompts; columns `prompt`, `category`).
Each prompt is sent as a single user turn; an LLM judge classifies the reply with OR-Bench's own
check-response prompt and class rule (mixmerge/judge/prompts/or_bench.yaml: the last [[...]],
"direct_answer" in it, else "indirect_refusal" in it, else direct_refusal; no [[...]] = unparsed)
into direct_answer / direct_refusal / indirect_refusal. The judge is OR-Bench's default,
gpt-4-turbo-2024-04-09, whenever the API judge is used and this benchmark's own `judge` block names
no model (evaluate.judge's model then does not apply, nor its prices).

Reported quantity (the paper's OR-Bench column, `score` = `hard_acceptance_rate`): the acceptance
rate on or-bench-hard-1k, % direct_answer among parsed verdicts; higher = less over-refusal.
With a `toxic:` sub-block, the same is done on or-bench-toxic (truly harmful prompts): its
rejection rate (% direct_refusal + indirect_refusal; higher = safer) is `toxic_rejection_rate`,
the other half of the over-refusal trade-off, listed in the report's notes (it enters no average).

bench_cfg keys (config `evaluate.benchmarks.or_bench`):
    data_files  local file(s) in the hub schema (str, list or {split: path}); wins over the hub
    path        hub dataset id                  default "bench-llm/or-bench"
    name        hub config                      default "or-bench-hard-1k"
    split       split to use                    default "train" (a local file's only split otherwise)
    revision    hub revision                    default null
    limit       keep the first N prompts        default null (all)
    generation  overrides of evaluate.generation for this benchmark   default {}
    judge       overrides of evaluate.judge for this benchmark        default {}
    toxic       {data_files | path, name ("or-bench-toxic"), split, revision, limit}  default null
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from mixmerge.evaluate.judged import judge_rows, load_rows
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import load_prompt_file
from mixmerge.judge.settings import JudgeSettings
from mixmerge.judge.settings import backend as judge_backend

log = logging.getLogger(__name__)


def prepare(ctx: EvalContext) -> EvalContext:
    """The context with OR-Bench's own judge model when the API judge would otherwise use the
    evaluation-wide model (this benchmark's `judge` block names none)."""
    upstream_model = str(load_prompt_file("or_bench").data["upstream_judge_model"])
    own = dict(ctx.bench_cfg.get("judge") or {})
    judge = JudgeSettings.from_config({**(ctx.eval_cfg.get("judge") or {}), **own})
    if judge_backend(judge.backend).loads_model or own.get("model"):  # not an API judge
        return ctx
    log.info("or_bench: judged by OR-Bench's default judge %s", upstream_model)
    # the evaluation-wide prices are another model's: no cost estimate unless set here
    own = {"price_input_per_1k": None, "price_output_per_1k": None, **own, "model": upstream_model}
    return replace(ctx, bench_cfg={**ctx.bench_cfg, "judge": own})


def extend(ctx: EvalContext, record: dict[str, Any]) -> dict[str, Any]:
    """The hard-1k acceptance and rejection rates; with a `toxic:` block, the toxic set's
    rejection rate (judged the same way, its samples marked subset "toxic")."""
    accept = record["score"]
    record = {
        **record,
        "hard_acceptance_rate": accept,
        "rejection_rate": None if accept is None else 100.0 - accept,  # on hard-1k
    }
    toxic_cfg = ctx.bench_cfg.get("toxic")
    if not toxic_cfg:
        return record
    defaults = ctx.spec.options["extra_sets"]["toxic"]  # its hub config, or-bench-toxic
    toxic_rows, _ = load_rows(
        {"path": ctx.bench_cfg.get("path"), **defaults, **dict(toxic_cfg)}, ctx.spec
    )
    if toxic_cfg.get("limit") is not None:
        toxic_rows = toxic_rows[: int(toxic_cfg["limit"])]
    if not toxic_rows:
        raise ValueError("or_bench: the toxic subset has no prompts")
    template = load_prompt_file("or_bench").template()
    toxic = judge_rows(ctx, toxic_rows, template, "toxic")
    accepted = toxic.pop("score")
    rate = None if accepted is None else 100.0 - accepted
    record["toxic_rejection_rate"] = rate
    record["toxic"] = {
        "n": toxic.pop("n"),
        # % refused (direct or indirect) among parsed verdicts; higher = safer
        "rejection_rate": rate,
        "counts": toxic["counts"],
        "n_parsed": toxic["n_parsed"],
        "n_unparsed": toxic["n_unparsed"],
        "judge_usage": toxic["judge_usage"],
    }
    return record
