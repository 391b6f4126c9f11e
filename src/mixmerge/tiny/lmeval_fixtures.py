"""Tiny synthetic benchmark files in the real hub schemas, for lm-eval's built-in tasks.

Each benchmark gets one folder under `out_dir` with one JSON-lines file per split, holding the
same columns (and nesting) as the hub dataset the lm-eval task reads, so the task can be
re-pointed at them with `dataset_path: json` (see `mixmerge.evaluate.lm_eval_tasks`):

- `gsm8k/{train,test}.jsonl`: openai/gsm8k (main) `{question, answer}`; the answer carries the
  calculator annotations `<<a+b=c>>` and ends with `#### N`.
- `arc_challenge/{train,validation,test}.jsonl`, `arc_easy/...`: allenai/ai2_arc
  `{id, question, choices: {text: [...], label: [...]}, answerKey}`.
- `mmlu/{dev,test}.jsonl`: cais/mmlu (all) `{question, subject, choices: [4 str], answer: int}`.
- `math/{train,test}.jsonl`: EleutherAI/hendrycks_math `{problem, level, type, solution}`, the
  solution ending in `\\boxed{N}` (read by the `minerva_math` task).
- `truthfulqa_mc2/validation.jsonl`: truthfulqa/truthful_qa (multiple_choice) `{question,
  mc1_targets: {choices, labels}, mc2_targets: {choices, labels}}` (labels 1 = true).

Everything is deterministic from `seed`. Few-shot source splits (train / dev) get at least
`MIN_FEWSHOT_ROWS` rows.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mixmerge.io import write_jsonl
from mixmerge.tiny import text

MIN_FEWSHOT_ROWS = 5
LABELS = ["A", "B", "C", "D"]
ITEMS = [
    "apples",
    "books",
    "coins",
    "pencils",
    "stickers",
    "marbles",
    "cookies",
    "stamps",
    "shells",
    "cards",
]
MMLU_SUBJECTS = ["elementary_mathematics", "high_school_computer_science", "miscellaneous"]


def _name(rng: random.Random) -> str:
    return rng.choice(text.SUBJECTS).capitalize()


def _gsm8k_row(rng: random.Random) -> dict[str, Any]:
    who, item = _name(rng), rng.choice(ITEMS)
    a, b, k = rng.randint(3, 40), rng.randint(2, 20), rng.randint(2, 6)
    kind = rng.randrange(3)
    if kind == 0:
        c = a + b
        question = f"{who} has {a} {item} and gets {b} more. How many {item} are there now?"
        steps = f"{who} has {a} + {b} = <<{a}+{b}={c}>>{c} {item} now."
    elif kind == 1:
        a = a + b
        c = a - b
        question = f"{who} has {a} {item} and gives away {b} of them. How many {item} are left?"
        steps = f"{who} has {a} - {b} = <<{a}-{b}={c}>>{c} {item} left."
    else:
        total = a * k
        c = total + b
        question = (
            f"{who} {rng.choice(text.VERBS)} {k} boxes with {a} {item} each, then finds "
            f"{b} more {item}. How many {item} are there in total?"
        )
        steps = (
            f"The boxes hold {k} * {a} = <<{k}*{a}={total}>>{total} {item}.\n"
            f"With the extra ones there are {total} + {b} = <<{total}+{b}={c}>>{c} {item}."
        )
    return {"question": question, "answer": f"{steps}\n#### {c}"}


def _distractors(rng: random.Random, correct: int, n: int = 3) -> list[int]:
    out: set[int] = set()
    while len(out) < n:
        cand = correct + rng.choice([-1, 1]) * rng.randint(1, 9)
        if cand != correct and cand >= 0:
            out.add(cand)
    return sorted(out)


def _choices(rng: random.Random, correct: str, wrong: list[str]) -> tuple[list[str], int]:
    options = [correct, *wrong]
    rng.shuffle(options)
    return options, options.index(correct)


def _arc_row(rng: random.Random, challenge: bool, ident: str) -> dict[str, Any]:
    if rng.random() < 0.5:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        if challenge:
            k = rng.randint(2, 5)
            correct = a * k + b
            question = f"{_name(rng)} packs {k} bags of {a} {rng.choice(ITEMS)} and adds {b}. How many in all?"
        else:
            correct = a + b
            question = f"What is {a} plus {b}?"
        options, gold = _choices(rng, str(correct), [str(x) for x in _distractors(rng, correct)])
    else:
        verb = rng.choice(text.VERBS)
        wrong = rng.sample([o for o in text.OBJECTS], 3)
        question = "Which of these words describes an action?"
        if challenge:
            question = f"In the sentence '{text.sentence(rng)}', which option is a verb?"
        options, gold = _choices(rng, verb, wrong)
    return {
        "id": ident,
        "question": question,
        "choices": {"text": options, "label": list(LABELS)},
        "answerKey": LABELS[gold],
    }


def _mmlu_row(rng: random.Random) -> dict[str, Any]:
    subject = rng.choice(MMLU_SUBJECTS)
    if subject == "elementary_mathematics":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        correct = a * b
        question = f"What is the product of {a} and {b}?"
        options, gold = _choices(rng, str(correct), [str(x) for x in _distractors(rng, correct)])
    elif subject == "high_school_computer_science":
        n = rng.randint(2, 9)
        question = f"How many elements does the Python list [{', '.join(['0'] * n)}] contain?"
        options, gold = _choices(rng, str(n), [str(x) for x in _distractors(rng, n)])
    else:
        topic = rng.choice(text.TOPICS)
        question = f"Which of the following is a topic, not an object: {topic}?"
        options, gold = _choices(rng, topic, rng.sample(text.OBJECTS, 3))
    return {"question": question, "subject": subject, "choices": options, "answer": gold}


def _math_row(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(3)
    if kind == 0:
        a, x, b = rng.randint(2, 9), rng.randint(1, 15), rng.randint(1, 30)
        c = a * x + b
        problem = f"Solve for $x$: ${a}x + {b} = {c}$."
        solution = (
            f"Subtracting ${b}$ from both sides gives ${a}x = {c - b}$, so "
            f"$x = \\frac{{{c - b}}}{{{a}}} = \\boxed{{{x}}}$."
        )
        mtype = "Algebra"
    elif kind == 1:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        problem = f"Compute ${a} + {b}$."
        solution = f"We have ${a} + {b} = \\boxed{{{a + b}}}$."
        mtype = "Prealgebra"
    else:
        a, b = rng.randint(10, 60), rng.randint(2, 9)
        problem = f"What is the remainder when ${a}$ is divided by ${b}$?"
        solution = (
            f"Since ${a} = {b} \\cdot {a // b} + {a % b}$, the remainder is $\\boxed{{{a % b}}}$."
        )
        mtype = "Number Theory"
    return {
        "problem": problem,
        "level": f"Level {rng.randint(1, 5)}",
        "type": mtype,
        "solution": solution,
    }


def _truthfulqa_row(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    true = [f"{a} plus {b} is {a + b}.", f"It is {a + b}."]
    false = [f"{a} plus {b} is {x}." for x in _distractors(rng, a + b)]
    mc1 = [true[0], *false]
    mc2 = [*true, *false]
    return {
        "question": f"What is {a} plus {b}?",
        "mc1_targets": {"choices": mc1, "labels": [1] + [0] * len(false)},
        "mc2_targets": {"choices": mc2, "labels": [1] * len(true) + [0] * len(false)},
    }


def _rng(seed: int, name: str, split: str) -> random.Random:
    return random.Random(f"{seed}:{name}:{split}")


def gsm8k(out_dir: Path, n_items: int, seed: int) -> None:
    """`gsm8k/{train,test}.jsonl`: openai/gsm8k (main)."""
    text.check_items(n_items)
    for split, n in (("train", max(n_items, MIN_FEWSHOT_ROWS)), ("test", n_items)):
        rng = _rng(seed, "gsm8k", split)
        write_jsonl(Path(out_dir) / "gsm8k" / f"{split}.jsonl", [_gsm8k_row(rng) for _ in range(n)])


def _arc(out_dir: Path, n_items: int, seed: int, name: str, challenge: bool) -> None:
    text.check_items(n_items)
    prefix = "ARC-Challenge" if challenge else "ARC-Easy"
    shots = max(n_items, MIN_FEWSHOT_ROWS)
    for split, n in (("train", shots), ("validation", n_items), ("test", n_items)):
        rng = _rng(seed, name, split)
        rows = [_arc_row(rng, challenge, f"Tiny{prefix}_{split}_{i}") for i in range(n)]
        write_jsonl(Path(out_dir) / name / f"{split}.jsonl", rows)


def arc_challenge(out_dir: Path, n_items: int, seed: int) -> None:
    """`arc_challenge/{train,validation,test}.jsonl`: allenai/ai2_arc (ARC-Challenge)."""
    _arc(out_dir, n_items, seed, "arc_challenge", True)


def arc_easy(out_dir: Path, n_items: int, seed: int) -> None:
    """`arc_easy/{train,validation,test}.jsonl`: allenai/ai2_arc (ARC-Easy)."""
    _arc(out_dir, n_items, seed, "arc_easy", False)


def mmlu(out_dir: Path, n_items: int, seed: int) -> None:
    """`mmlu/{dev,test}.jsonl`: cais/mmlu (all)."""
    text.check_items(n_items)
    for split, n in (("dev", max(n_items, MIN_FEWSHOT_ROWS)), ("validation", n_items), ("test", n_items)):
        rng = _rng(seed, "mmlu", split)
        write_jsonl(Path(out_dir) / "mmlu" / f"{split}.jsonl", [_mmlu_row(rng) for _ in range(n)])


def math(out_dir: Path, n_items: int, seed: int) -> None:
    """`math/{train,test}.jsonl`: EleutherAI/hendrycks_math."""
    text.check_items(n_items)
    for split, n in (("train", max(n_items, MIN_FEWSHOT_ROWS)), ("test", n_items)):
        rng = _rng(seed, "math", split)
        write_jsonl(Path(out_dir) / "math" / f"{split}.jsonl", [_math_row(rng) for _ in range(n)])


def truthfulqa_mc2(out_dir: Path, n_items: int, seed: int) -> None:
    """`truthfulqa_mc2/validation.jsonl`: truthfulqa/truthful_qa (multiple_choice)."""
    text.check_items(n_items)
    rng = _rng(seed, "truthfulqa_mc2", "validation")
    rows = [_truthfulqa_row(rng) for _ in range(n_items)]
    write_jsonl(Path(out_dir) / "truthfulqa_mc2" / "validation.jsonl", rows)


WRITERS = (gsm8k, arc_challenge, arc_easy, mmlu, math, truthfulqa_mc2)


def write_lmeval_fixtures(out_dir: Path, n_items: int, seed: int) -> None:
    """Write the fixture splits of every lm-eval benchmark under `out_dir`."""
    for write in WRITERS:
        write(out_dir, n_items, seed)
