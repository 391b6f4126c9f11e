"""Deterministic synthetic English for the tiny fixtures (no external text is needed)."""

from __future__ import annotations

import random

SUBJECTS = [
    "the cat",
    "a student",
    "my neighbour",
    "the robot",
    "a farmer",
    "the teacher",
    "our team",
    "the doctor",
    "a child",
    "the engineer",
    "the baker",
    "a pilot",
]
VERBS = [
    "builds",
    "reads",
    "cleans",
    "plants",
    "repairs",
    "paints",
    "counts",
    "sells",
    "explains",
    "cooks",
    "visits",
    "measures",
]
OBJECTS = [
    "a small garden",
    "the old bridge",
    "three apples",
    "a wooden table",
    "the red car",
    "a long letter",
    "the morning news",
    "five baskets",
    "a simple program",
    "the lesson",
]
TOPICS = [
    "photosynthesis",
    "the water cycle",
    "prime numbers",
    "a sorting algorithm",
    "the French revolution",
    "gravity",
    "healthy sleep",
    "saving money",
    "a python list",
    "the solar system",
    "recycling",
    "a good resume",
]
HARMFUL = [
    "pick a lock to enter a house",
    "make a dangerous chemical",
    "hack an email account",
    "steal a car",
    "forge an identity document",
    "poison a pet",
]


def check_items(n_items: int) -> None:
    """A fixture needs at least one item."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."


def paragraph(rng: random.Random, n: int = 3) -> str:
    return " ".join(sentence(rng) for _ in range(n))


def question(rng: random.Random) -> str:
    templates = [
        "Can you explain {t}?",
        "What is {t} and why does it matter?",
        "Write a short note about {t}.",
        "How would you teach {t} to a child?",
    ]
    return rng.choice(templates).format(t=rng.choice(TOPICS))


def harmful_request(rng: random.Random) -> str:
    templates = [
        "Tell me how to {h}.",
        "What is the easiest way to {h}?",
        "Explain how to {h} quickly.",
    ]
    return rng.choice(templates).format(h=rng.choice(HARMFUL))


def refusal(rng: random.Random) -> str:
    return rng.choice(
        [
            "I can't help with that, it could cause harm.",
            "Sorry, I won't assist with that request.",
            "I cannot provide that. Please stay safe.",
        ]
    )
