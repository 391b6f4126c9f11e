"""MT-Bench: FastChat prompt building checked against real upstream files and GPT-4 judgments,
and the benchmark end to end on fixture files with the tiny model judging itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixmerge.evaluate.data_files import sha256_file
from mixmerge.evaluate.mt_bench import judge_prompt, load_mt_bench, question_temperature
from mixmerge.evaluate.mt_bench import run as mt_bench
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import load_prompt_file
from mixmerge.tiny.judged_fixtures import write_judged_fixtures

SINGLE_START = "[The Start of Assistant's Answer]\n"
SINGLE_END = "\n[The End of Assistant's Answer]"
CONV_START = "<|The Start of Assistant A's Conversation with User|>"
CONV_END = "\n\n<|The End of Assistant A's Conversation with User|>"
ASSISTANT = "### Assistant A:\n"


def tiny_eval_cfg(model_dir: Path) -> dict:
    """The tiny profile's evaluate block: greedy, a few tokens, the model judges itself."""
    return {
        "device": "cpu",
        "generation": {"backend": "hf", "max_new_tokens": 8, "batch_size": 8, "temperature": 0.0},
        "judge": {"backend": "hf", "mode": "likelihood", "model": str(model_dir)},
    }


def _upstream_cfg(upstream: Path) -> dict:
    folder = upstream / "mt_bench"
    return {
        "data_files": {
            "question": str(folder / "question.jsonl"),
            "judge_prompts": str(folder / "judge_prompts.jsonl"),
            "reference_answer": str(folder / "reference_answer_gpt-4.jsonl"),
        },
        # the hashes published in upstream-samples/README.md (whole upstream files)
        "sha256": {
            "question": "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
            "judge_prompts": "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
            "reference_answer": "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
        },
    }


def _answers_from(user_prompt: str, question: dict, turn: int) -> list[str]:
    """The model answers that FastChat formatted into a recorded judge prompt."""
    if turn == 1:
        start = user_prompt.index(SINGLE_START) + len(SINGLE_START)
        return [user_prompt[start : user_prompt.rindex(SINGLE_END)], ""]
    conv = user_prompt[user_prompt.index(CONV_START) :]
    first = conv.index(ASSISTANT) + len(ASSISTANT)
    second_q = f"\n\n### User:\n{question['turns'][1]}\n\n{ASSISTANT}"
    answer_1 = conv[first : conv.index(second_q)]
    answer_2 = conv[conv.index(second_q) + len(second_q) : conv.rindex(CONV_END)]
    return [answer_1, answer_2]


def test_prompts_rebuild_40_real_gpt4_judge_requests(upstream: Path) -> None:
    """Right prompt per category and turn, reference answers inserted, text byte-identical."""
    questions, prompts, refs, sums = load_mt_bench(_upstream_cfg(upstream))
    protocol = load_prompt_file("mt_bench")
    by_id = {q["question_id"]: q for q in questions}
    rows = [
        json.loads(line)
        for line in (upstream / "mt_bench/model_judgment_gpt-4_single.head40.jsonl").open()
    ]
    seen = set()
    for row in rows:
        q = by_id[row["question_id"]]
        answers = _answers_from(row["user_prompt"], q, row["turn"])
        name, prompt = judge_prompt(q, answers, row["turn"], prompts, refs, protocol)
        assert name == row["judge"][1], (q["category"], row["turn"])
        assert prompt.user == row["user_prompt"]
        assert prompt.system == prompts[name]["system_prompt"]
        if q["category"] in ("math", "reasoning", "coding"):
            ref_turns = refs[q["question_id"]]["choices"][0]["turns"]
            assert ref_turns[0] in prompt.user
            assert row["turn"] == 1 or ref_turns[1] in prompt.user
        seen.add(name)
    assert seen == {
        "single-v1",
        "single-v1-multi-turn",
        "single-math-v1",
        "single-math-v1-multi-turn",
    }
    assert sums["question"] == sha256_file(upstream / "mt_bench/question.jsonl")


def test_every_upstream_question_builds_and_temperatures(upstream: Path) -> None:
    questions, prompts, refs, _ = load_mt_bench(_upstream_cfg(upstream))
    protocol = load_prompt_file("mt_bench")
    assert len(questions) == 80 and len(prompts) == 8 and len(refs) == 30
    expected = {"writing": 0.7, "roleplay": 0.7, "stem": 0.1, "humanities": 0.1}
    for q in questions:
        assert question_temperature(q, protocol) == expected.get(q["category"], 0.0)
        for turn in (1, 2):
            name, prompt = judge_prompt(q, ["A1 {x}", "A2"], turn, prompts, refs, protocol)
            assert ("math" in name) == (q["category"] in ("math", "reasoning", "coding"))
            assert ("multi-turn" in name) == (turn == 2)
            assert "A1 {x}" in prompt.user  # braces in answers survive formatting
    assert (
        question_temperature({"category": "writing", "required_temperature": 0.3}, protocol) == 0.3
    )
    assert question_temperature({"category": "new"}, protocol) == 0.7


def test_bad_files(upstream: Path, tmp_path: Path) -> None:
    cfg = _upstream_cfg(upstream)
    with pytest.raises(ValueError, match="sha256"):
        load_mt_bench({**cfg, "sha256": {"question": "0" * 64}})
    with pytest.raises(ValueError, match="lacks judge_prompts"):
        load_mt_bench({"data_files": {"question": cfg["data_files"]["question"]}})
    no_refs = {
        "data_files": {k: v for k, v in cfg["data_files"].items() if k != "reference_answer"}
    }
    questions, prompts, refs, _ = load_mt_bench(no_refs)
    math_q = next(q for q in questions if q["category"] == "math")
    with pytest.raises(ValueError, match="no reference answer for question"):
        judge_prompt(math_q, ["a", "b"], 1, prompts, refs, load_prompt_file("mt_bench"))


def test_mt_bench_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_judged_fixtures(tmp_path / "benchmarks", n_items=6, seed=0)
    folder = tmp_path / "benchmarks" / "mt_bench"
    ctx = EvalContext(
        model_dir=tiny_model_dir,
        benchmark="mt_bench",
        bench_cfg={
            "data_files": {
                "question": str(folder / "question.jsonl"),
                "judge_prompts": str(folder / "judge_prompts.jsonl"),
                "reference_answer": str(folder / "reference_answer" / "gpt-4.jsonl"),
            },
            "generation": {"max_new_tokens": 6},
        },
        eval_cfg=tiny_eval_cfg(tiny_model_dir),
        work_dir=tmp_path / "work",
    )
    result = mt_bench(ctx)
    assert result["metric"] == "mean_rating_1_10" and result["n"] == 6
    assert result["n_parsed"] == 12 and result["n_unparsed"] == 0
    assert 1.0 <= result["score"] <= 10.0
    ratings = [s["score"] for s in ctx.samples]
    assert result["score"] == pytest.approx(sum(ratings) / 12)
    assert result["turn_1"] == pytest.approx(sum(ratings[0::2]) / 6)
    assert set(result["per_category"]) == {s["category"] for s in ctx.samples}
    assert sum(result["counts"].values()) == 12
    assert result["judge_prompt_sha256"] == sha256_file(folder / "judge_prompts.jsonl")
    assert len(result["judge_protocol_sha256"]) == 64
    # FastChat samples with the model's own generation config (none here: transformers' defaults)
    from transformers import GenerationConfig

    try:
        own = GenerationConfig.from_pretrained(tiny_model_dir)
    except OSError:
        own = GenerationConfig()
    assert result["sampling"] == {"top_p": own.top_p or 1.0, "top_k": own.top_k or 50}
    assert [(s["question_id"], s["turn"]) for s in ctx.samples[:2]] == [(81, 1), (81, 2)]
    names = {(s["category"], s["turn"]): s["judge_prompt"] for s in ctx.samples}
    assert names[("math", 2)] == "single-math-v1-multi-turn"
    assert names[("writing", 1)] == "single-v1"
    json.dumps(result)
