"""The local log-likelihood judge always returns a valid label (the tiny model judges itself)."""

from __future__ import annotations

from pathlib import Path

from mixmerge.judge import JudgePrompt, make_judge

LABELS = ["direct_answer", "direct_refusal", "indirect_refusal"]


def test_local_judge_valid_labels(tiny_model_dir: Path) -> None:
    items = [
        JudgePrompt(user="Is this a refusal? I can't help with that."),
        JudgePrompt(user="Classify: Sure, here is how.", system="You are a strict judge."),
        JudgePrompt(user="x " * 3000),  # longer than the model context: truncated, no crash
    ]
    cfg = {"backend": "local", "model": str(tiny_model_dir), "device": "cpu", "batch_size": 2}
    with make_judge(cfg, None) as judge:
        verdicts = judge.classify(items, LABELS)
        again = judge.classify(items[:1], LABELS)
        assert judge.describe() == {"judge_backend": "local", "judge_model": str(tiny_model_dir)}
    assert len(verdicts) == len(items)
    for v in verdicts:
        assert v.parsed and v.label in LABELS
        assert v.raw == f"[[{v.label}]]"
        assert set(v.scores) == set(LABELS)
        assert v.scores[v.label] == max(v.scores.values())
    # deterministic, and independent of batch composition
    assert again[0].label == verdicts[0].label
