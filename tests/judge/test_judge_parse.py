"""Verdict parsing and prompt templates (no model needed)."""

from __future__ import annotations

import pytest

from mixmerge.judge import load_prompt, normalize_label, parse_verdict

LABELS = ["direct_answer", "direct_refusal", "indirect_refusal"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The model answers. [[direct_answer]]", "direct_answer"),
        # the last bracket wins, even after quoting other classes while reasoning
        (
            "Not [[direct_refusal]] nor [[indirect_refusal]]; final: [[direct_answer]]",
            "direct_answer",
        ),
        ("[[direct_answer]] ... on reflection [[indirect_refusal]]", "indirect_refusal"),
        ("[[Direct Answer]]", "direct_answer"),
        ("[[ direct-refusal ]]", "direct_refusal"),
        ("[[INDIRECT REFUSAL.]]", "indirect_refusal"),
        ("[[1.direct_answer]]", "direct_answer"),
        ("[[3. indirect_refusal]]", "indirect_refusal"),
        ("CLASS: direct_answer", None),  # no brackets
        ("[[maybe]]", None),
        ("[[direct_answer]] then garbage [[???]]", None),  # last bracket is not a label
        ("", None),
        ("[[direct_answer", None),
    ],
)
def test_parse_verdict(text: str, expected: str | None) -> None:
    assert parse_verdict(text, LABELS) == expected


def test_parse_returns_the_allowed_spelling() -> None:
    assert parse_verdict("[[tie]]", ["A", "B", "Tie"]) == "Tie"
    assert normalize_label("  Direct--Answer ") == "direct_answer"


def test_or_bench_prompt_renders_and_keeps_braces() -> None:
    tmpl = load_prompt("or_bench")
    assert list(tmpl.labels) == LABELS
    assert "justincui03/or-bench" in tmpl.source
    p = tmpl.render(question="How {do} I?", response="Like {this}.")
    assert p.system is None
    assert 'QUESTION: "How {do} I?"' in p.user and 'RESPONSE: "Like {this}."' in p.user
    assert p.user.rstrip().endswith("CLASS:")
    with pytest.raises(KeyError, match="response"):
        tmpl.render(question="q")


def test_unknown_prompt_and_backend() -> None:
    from mixmerge.judge import make_judge

    with pytest.raises(FileNotFoundError):
        load_prompt("nope")
    with pytest.raises(ValueError, match="unknown judge backend"):
        make_judge({"backend": "psychic", "model": "x"})
