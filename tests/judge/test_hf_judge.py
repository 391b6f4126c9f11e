"""The local transformers judge: likelihood mode always yields a valid verdict; generate mode
parses real judge text and counts what it can't parse (the tiny model judges itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmerge.judge import JudgePrompt, load_prompt, load_prompt_file, make_judge, run_judge

LABELS = ["direct_answer", "direct_refusal", "indirect_refusal"]


def test_likelihood_judge_valid_labels(tiny_model_dir: Path) -> None:
    items = [
        JudgePrompt(user="Is this a refusal? I can't help with that."),
        JudgePrompt(user="Classify: Sure, here is how.", system="You are a strict judge."),
        JudgePrompt(user="x " * 3000),  # longer than the model context: truncated, no crash
    ]
    cfg = {"backend": "local", "model": str(tiny_model_dir), "device": "cpu", "batch_size": 2}
    with make_judge(cfg) as judge:
        verdicts = judge.classify(items, LABELS)
        again = judge.classify(items[:1], LABELS)
        assert judge.describe() == {
            "judge_backend": "hf",
            "judge_model": str(tiny_model_dir),
            "judge_mode": "likelihood",
        }
    assert len(verdicts) == len(items)
    for v in verdicts:
        assert v.parsed and v.label in LABELS
        assert v.raw == f"[[{v.label}]]"
        assert set(v.scores) == set(LABELS)
        assert v.scores[v.label] == max(v.scores.values())
    # deterministic, and independent of batch composition
    assert again[0].label == verdicts[0].label
    assert again[0].scores[again[0].label] == pytest.approx(verdicts[0].scores[again[0].label])


def test_likelihood_matches_full_sequence_scoring(tiny_model_dir: Path) -> None:
    """The cached-prefix scoring equals log p(verdict | prompt) computed the plain way."""
    import torch

    parser = load_prompt_file("mt_bench").parser
    judge = make_judge(
        {"backend": "hf", "mode": "likelihood", "model": str(tiny_model_dir), "batch_size": 3}
    )
    items = [JudgePrompt(user="short"), JudgePrompt(user="longer prompt " * 30, system="s")]
    [v_short, v_long] = judge.judge(items, parser)
    tok, lm = judge._tok, judge._lm
    for item, v in ((items[0], v_short), (items[1], v_long)):
        ctx = judge._encode(item)
        for label in ("1", "7", "10"):  # candidates of different token lengths
            cont = tok(parser.candidates()[label], add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = lm(input_ids=torch.tensor([ctx + cont])).logits.float()
            lp = torch.log_softmax(logits[0], -1)
            expected = sum(float(lp[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))
            assert v.scores[label] == pytest.approx(expected, abs=1e-3)


def test_likelihood_rating_and_md_judge_formats(tiny_model_dir: Path) -> None:
    cfg = {"backend": "hf", "mode": "likelihood", "model": str(tiny_model_dir), "device": "cpu"}
    rating = load_prompt_file("mt_bench").parser
    salad = load_prompt("salad_bench")
    verdicts, info = run_judge(cfg, [JudgePrompt(user="Rate this answer.")] * 2, rating)
    assert all(v.raw == f"[[{v.label}]]" and 1 <= int(v.label) <= 10 for v in verdicts)
    assert info["judge_usage"]["requests"] == 2 and info["judge_usage"]["cost_usd"] is None
    [v] = run_judge(cfg, [salad.render(question="q", response="r")], salad.parser)[0]
    assert v.label in ("safe", "unsafe") and v.raw == f"[RESULT]: {v.label}"


def test_generate_mode_parses_counts_unparsed_and_caches(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    template = load_prompt("salad_bench")
    prompts = [template.render(question=f"q{i}", response="r") for i in range(3)]
    raw_prompt = load_prompt("salad_bench_md_judge_v0_1").render(question="q", response="r")
    cfg = {
        "backend": "hf",
        "mode": "generate",
        "model": str(tiny_model_dir),
        "device": "cpu",
        "max_tokens": 6,
        "batch_size": 2,
        "cache_dir": str(tmp_path / "cache"),
    }
    verdicts, info = run_judge(cfg, [*prompts, raw_prompt], template.parser)
    assert len(verdicts) == 4 and info["judge_mode"] == "generate"
    for v in verdicts:  # a random tiny model writes no "[RESULT]": unparsed, never a crash
        assert v.parsed == (v.label is not None) and v.attempts == 1
        assert v.parsed or template.parser.parse(v.raw) is None
    usage = info["judge_usage"]
    assert usage["requests"] == 4 and usage["prompt_tokens"] > 4 * 100
    again, info2 = run_judge(cfg, [*prompts, raw_prompt], template.parser)
    assert [v.raw for v in again] == [v.raw for v in verdicts]
    assert all(v.attempts == 0 for v in again) and info2["judge_usage"]["cached"] == 4


def test_bad_mode(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown judge mode"):
        make_judge({"backend": "hf", "mode": "vibes", "model": str(tiny_model_dir)})
    with pytest.raises(ValueError, match="no judge configured"):
        run_judge({"backend": "hf"}, [JudgePrompt(user="x")], load_prompt("or_bench").parser)
