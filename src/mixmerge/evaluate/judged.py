"""The step the single-turn judged benchmarks share: the model answers each question, then the
judge rates each answer with the benchmark's prompt (HaluEval-Wild, SaladBench, OR-Bench)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixmerge.evaluate.generation import generate_chat, merged_generation_config
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import judge_config, run_judge
from mixmerge.judge.prompts import PromptTemplate


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
