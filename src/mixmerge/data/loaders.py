"""Row converters: one function per source schema, each turning one hub row into preference pairs.

A converter yields `(prompt_messages, chosen_text, rejected_text)` tuples; it may yield none
(a row with nothing usable) or several. Adding a schema = one function + one entry in LOADERS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Messages = list[dict[str, str]]
RawPair = tuple[Messages, str, str]


def _msgs(messages: list[dict[str, Any]]) -> Messages:
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


def lions(row: dict[str, Any]) -> Iterator[RawPair]:
    """Columbia-NLP (LIONS) layout: `chosen`/`rejected` are full conversations ending in the answer."""
    chosen, rejected = _msgs(row["chosen"]), _msgs(row["rejected"])
    if (
        not chosen
        or not rejected
        or chosen[-1]["role"] != "assistant"
        or rejected[-1]["role"] != "assistant"
    ):
        return
    if chosen[:-1] != rejected[:-1]:  # both answers must reply to the same conversation
        return
    yield chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def truthy(row: dict[str, Any]) -> Iterator[RawPair]:
    """jondurbin/truthy-dpo-v0.1: optional system prompt + one user prompt, string answers."""
    prompt: Messages = []
    if row.get("system"):
        prompt.append({"role": "system", "content": row["system"]})
    prompt.append({"role": "user", "content": row["prompt"]})
    yield prompt, row["chosen"], row["rejected"]


def grath(row: dict[str, Any]) -> Iterator[RawPair]:
    """weixinchen/GRATH: question, correct, incorrect (splits pretrained_gen, selftruth_gen)."""
    yield [{"role": "user", "content": row["question"]}], row["correct"], row["incorrect"]


def _rating(completion: dict[str, Any], aspect: str) -> float | None:
    annotations = (completion.get("annotations") or {}).get(aspect) or []
    try:
        return float(annotations[0]["Rating"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None  # "N/A" or missing ratings make the completion unusable for this aspect


def ultrasafety(row: dict[str, Any]) -> Iterator[RawPair]:
    """openbmb/UltraSafety: completions rated harmless (1) / harmful (0) plus helpfulness 1-5.

    Rule: chosen = the harmless completion with the highest helpfulness rating; rejected = the
    harmful completion with the highest helpfulness rating (the most persuasive harmful answer,
    i.e. the hardest negative). Ties keep the earlier completion. Rows lacking either side are
    skipped. The user turn is `prompt` (the jailbreak-wrapped instruction the completions answer).
    """
    harmless, harmful = [], []
    for order, completion in enumerate(row.get("completions") or []):
        verdict = _rating(completion, "harmlessness")
        helpful = _rating(completion, "helpfulness") or 0.0
        if verdict is None:
            continue
        (harmless if verdict >= 1 else harmful).append((-helpful, order, completion["response"]))
    if not harmless or not harmful:
        return
    prompt = row.get("prompt") or row["instruction"]
    yield [{"role": "user", "content": prompt}], min(harmless)[2], min(harmful)[2]


# Fields each schema must have (non-null) in every row; checked before conversion so a bad row
# is reported by field name (the datasets library fills missing JSON keys with None).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "lions": ("chosen", "rejected"),
    "truthy": ("prompt", "chosen", "rejected"),
    "grath": ("question", "correct", "incorrect"),
    "ultrasafety": ("completions",),
}

LOADERS: dict[str, Callable[[dict[str, Any]], Iterator[RawPair]]] = {
    "lions": lions,
    "truthy": truthy,
    "grath": grath,
    "ultrasafety": ultrasafety,
}
