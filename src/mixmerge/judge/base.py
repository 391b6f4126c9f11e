"""Judge interface: classify (system, user) judge prompts into one of a fixed set of labels."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class JudgePrompt:
    """One judge request: the user message and an optional system message."""

    user: str
    system: str | None = None


@dataclass
class Verdict:
    """A judge's decision. `label` is None exactly when the answer could not be parsed."""

    label: str | None
    raw: str
    parsed: bool
    attempts: int = 1  # judge calls spent (re-asks included); 0 for a cache hit
    scores: dict[str, float] | None = field(default=None)  # local judge: log-likelihood per label

    def to_record(self) -> dict[str, Any]:
        return {"label": self.label, "raw": self.raw, "parsed": self.parsed}


class Judge(ABC):
    """Base class of the judge backends; see `mixmerge.judge.make_judge`."""

    backend: str = ""
    model: str = ""

    @abstractmethod
    def classify(self, items: Sequence[JudgePrompt], labels: Sequence[str]) -> list[Verdict]:
        """One verdict per item, in order; each label is one of `labels` or None (unparsed)."""

    def describe(self) -> dict[str, str]:
        return {"judge_backend": self.backend, "judge_model": self.model}

    def close(self) -> None:
        """Release models / connections (no-op by default)."""
        return None

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BRACKETED = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_ENUMERATION = re.compile(r"^\(?\d+\s*[.):]\s*")  # "1.direct_answer", "(2) direct_refusal"


def normalize_label(text: str) -> str:
    """Lowercase; runs of spaces/hyphens -> "_"; surrounding quotes, stars and dots dropped."""
    text = text.strip().strip("\"'`*.").strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def parse_verdict(text: str, labels: Sequence[str]) -> str | None:
    """The label in the LAST [[...]] of `text`, or None when there is none or it is no label.

    Only the last bracket counts (as in OR-Bench's check_response.py): judges often quote the
    class names while reasoning before stating their final choice.
    """
    found = _BRACKETED.findall(text or "")
    if not found:
        return None
    allowed = {normalize_label(label): label for label in labels}
    choice = found[-1].strip()
    if normalize_label(choice) in allowed:
        return allowed[normalize_label(choice)]
    # The prompt numbers its classes ("1.direct_answer"); judges sometimes echo the number.
    return allowed.get(normalize_label(_ENUMERATION.sub("", choice)))


def verdict_counts(verdicts: Sequence[Verdict], labels: Sequence[str]) -> dict[str, int]:
    """Count per label over parsed verdicts (every label present, zero if unseen)."""
    counts = {label: 0 for label in labels}
    for v in verdicts:
        if v.parsed and v.label is not None:
            counts[v.label] += 1
    return counts
