"""MT-Bench: 80 two-turn questions, single-answer grading by an LLM judge on a 1-10 scale.

Follows FastChat's llm_judge protocol (rules in mixmerge/judge/prompts/mt_bench.yaml):
1. Turn 1, then turn 2 (with the model's own turn-1 answer in the history) are generated with the
   category's temperature (writing/roleplay 0.7, stem/humanities 0.1, others 0; a question's
   `required_temperature` wins). Sampled categories use the model's own top_p / top_k (its
   generation_config.json, else transformers' defaults 1.0 / 50), as FastChat's
   `model.generate(do_sample=True, temperature=t)` does; the benchmark's `generation` block may
   set top_p / top_k explicitly (evaluate.generation's values do not apply here).
2. Each turn is judged alone: turn 1 with `single-v1`, turn 2 with `single-v1-multi-turn`
   (the whole conversation shown, the second answer judged); math, reasoning and coding use
   `single-math-v1` / `single-math-v1-multi-turn` with the GPT-4 reference answers inserted.
3. The rating is the first `[[N]]` of the reply (backup `[N]`); a reply without one counts as
   unparsed (FastChat's -1) and is dropped.
Score = mean of all parsed turn ratings (raw 1-10), also per turn and per category.

bench_cfg keys (config `evaluate.benchmarks.mt_bench`):
    data_files  {question, judge_prompts, reference_answer}: FastChat's question.jsonl,
                judge_prompts.jsonl and reference_answer/gpt-4.jsonl, as local paths or pinned URLs
    sha256      {question, judge_prompts, reference_answer}: expected hashes (checked when set)
    limit       keep the first N questions                              default null (all 80)
    generation  overrides of evaluate.generation                        default {}
    judge       overrides of evaluate.judge                             default {}
"""

from __future__ import annotations

import logging
from collections import defaultdict
from statistics import fmean
from typing import Any

from mixmerge.evaluate.data_files import benchmark_files, read_json_or_jsonl
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import (
    JudgePrompt,
    PromptFile,
    judge_config,
    load_prompt_file,
    run_judge,
    verdict_summary,
)
from mixmerge.runtime.generation import (
    MODEL_DEFAULT,
    generate_chat,
    merged_generation_config,
    resolve_sampling,
)

log = logging.getLogger(__name__)

FILES = ("question", "judge_prompts")
OPTIONAL_FILES = ("reference_answer",)


def load_mt_bench(
    bench_cfg: dict[str, Any],
) -> tuple[
    list[dict[str, Any]], dict[str, dict[str, Any]], dict[int, dict[str, Any]], dict[str, str]
]:
    """(questions, judge prompts by name, reference answers by question id, sha256 per file)."""
    paths, sums = benchmark_files(bench_cfg, "mt_bench", FILES, OPTIONAL_FILES)
    questions = read_json_or_jsonl(paths["question"])
    for q in questions:
        if not {"question_id", "category", "turns"} <= set(q) or len(q["turns"]) < 2:
            raise ValueError(
                f"mt_bench: {paths['question']}: each question needs question_id, category and "
                "two turns"
            )
    prompts = {row["name"]: row for row in read_json_or_jsonl(paths["judge_prompts"])}
    refs: dict[int, dict[str, Any]] = {}
    if "reference_answer" in paths:
        refs = {int(r["question_id"]): r for r in read_json_or_jsonl(paths["reference_answer"])}
    limit = bench_cfg.get("limit")
    if limit is not None:
        questions = questions[: int(limit)]
    return questions, prompts, refs, sums


def question_temperature(question: dict[str, Any], protocol: PromptFile) -> float:
    """FastChat gen_model_answer: required_temperature, else the category's, else the default."""
    if question.get("required_temperature") is not None:
        return float(question["required_temperature"])
    table = protocol.data["temperature"]
    return float(table.get(question["category"], protocol.data["default_temperature"]))


def judge_prompt(
    question: dict[str, Any],
    answers: list[str],
    turn: int,
    judge_prompts: dict[str, dict[str, Any]],
    references: dict[int, dict[str, Any]],
    protocol: PromptFile,
) -> tuple[str, JudgePrompt]:
    """(prompt name, judge request) for one turn (1 or 2), as FastChat's run_judge_single builds it."""
    names = protocol.data["prompt_names"]
    needs_ref = question["category"] in protocol.data["reference_categories"]
    if turn == 1:
        name = names["single_reference" if needs_ref else "single"]
    elif turn == 2:
        name = names["multi_turn_reference" if needs_ref else "multi_turn"]
    else:
        raise ValueError(f"mt_bench: turn must be 1 or 2, got {turn}")
    if name not in judge_prompts:
        raise ValueError(f"mt_bench: judge_prompts has no prompt named {name!r}")
    row = judge_prompts[name]
    fields: dict[str, str] = {}
    if needs_ref:
        ref = references.get(int(question["question_id"]))
        if ref is None:
            raise ValueError(
                f"mt_bench: no reference answer for question {question['question_id']} "
                f"(category {question['category']}); set data_files.reference_answer"
            )
        ref_turns = ref["choices"][0]["turns"]
        fields["ref_answer_1"] = ref_turns[0]
        if turn == 2:
            fields["ref_answer_2"] = ref_turns[1]
    if turn == 2:
        user = row["prompt_template"].format(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=answers[0],
            answer_2=answers[1],
            **fields,
        )
    else:
        user = row["prompt_template"].format(
            question=question["turns"][0], answer=answers[0], **fields
        )
    return name, JudgePrompt(user=user, system=row.get("system_prompt") or None)


def run(ctx: EvalContext) -> dict[str, Any]:
    """Score MT-Bench (the registry's `mt_bench` runner)."""
    questions, judge_prompts, references, sums = load_mt_bench(ctx.bench_cfg)
    if not questions:
        raise ValueError("mt_bench: no questions to evaluate")
    protocol = load_prompt_file("mt_bench")
    gen_cfg = merged_generation_config(ctx.eval_cfg, ctx.bench_cfg, max_new_tokens=1024)
    own = ctx.bench_cfg.get("generation") or {}
    for key in ("top_p", "top_k"):  # FastChat samples with the model's generation config
        gen_cfg[key] = own.get(key, MODEL_DEFAULT)
    gen_cfg = resolve_sampling(gen_cfg, ctx.model_dir)
    temps = [question_temperature(q, protocol) for q in questions]
    device = ctx.eval_cfg["device"]

    first_turn = [[{"role": "user", "content": q["turns"][0]}] for q in questions]
    answers_1 = generate_chat(
        ctx.model_dir, first_turn, gen_cfg, device, temperatures=temps, cache=ctx.generations
    )
    second_turn = [
        [*conv, {"role": "assistant", "content": a1}, {"role": "user", "content": q["turns"][1]}]
        for conv, a1, q in zip(first_turn, answers_1, questions, strict=True)
    ]
    answers_2 = generate_chat(
        ctx.model_dir, second_turn, gen_cfg, device, temperatures=temps, cache=ctx.generations
    )

    items: list[tuple[dict[str, Any], int, str, str]] = []  # question, turn, prompt name, answer
    prompts: list[JudgePrompt] = []
    for q, a1, a2 in zip(questions, answers_1, answers_2, strict=True):
        for turn, answer in ((1, a1), (2, a2)):
            name, prompt = judge_prompt(q, [a1, a2], turn, judge_prompts, references, protocol)
            items.append((q, turn, name, answer))
            prompts.append(prompt)
    cfg = judge_config(ctx.eval_cfg, ctx.bench_cfg, protocol.decoding)
    verdicts, info = run_judge(cfg, prompts, protocol.parser)

    by_turn: dict[int, list[float]] = defaultdict(list)
    by_category: dict[str, list[float]] = defaultdict(list)
    for (q, turn, name, answer), v in zip(items, verdicts, strict=True):
        rating = float(v.label) if v.parsed and v.label is not None else -1.0
        if rating != -1.0:
            by_turn[turn].append(rating)
            by_category[q["category"]].append(rating)
        ctx.samples.append(
            {
                "question_id": q["question_id"],
                "category": q["category"],
                "turn": turn,
                "question": q["turns"][turn - 1],
                "response": answer,
                "judge_prompt": name,
                "score": rating,  # FastChat's convention: -1 = no rating found
                "parsed": v.parsed,
                "judge_raw": v.raw,
            }
        )
    ratings = by_turn[1] + by_turn[2]
    return {
        "benchmark": ctx.benchmark,
        "score": fmean(ratings) if ratings else None,
        "n": len(questions),
        "metric": "mean_rating_1_10",
        "turn_1": fmean(by_turn[1]) if by_turn[1] else None,
        "turn_2": fmean(by_turn[2]) if by_turn[2] else None,
        "per_category": {cat: fmean(v) for cat, v in sorted(by_category.items())},
        # what the sampled categories drew with (the model's generation config, as FastChat)
        "sampling": {"top_p": gen_cfg["top_p"], "top_k": gen_cfg["top_k"]},
        **verdict_summary(verdicts, protocol.parser, "mt_bench"),
        **info,
        "judge_prompt": "mt_bench",
        "judge_prompt_sha256": sums["judge_prompts"],  # FastChat's judge_prompts.jsonl
        "judge_prompt_source": protocol.source,
        "judge_protocol_sha256": protocol.sha256,  # mixmerge/judge/prompts/mt_bench.yaml
        "data_sha256": sums,
    }
