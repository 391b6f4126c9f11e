"""Judge prompt files: YAML data files in mixmerge/judge/prompts/, one per benchmark (or judge).

Keys of a prompt file:
    source          where the text and rules come from (a pinned URL, a paper)
    labels          the verdicts counted in the score file
    verdict_format  how a verdict reads, "{label}" filled in (default "[[{label}]]"); the
                    likelihood judge scores exactly these texts
    parse           how a free-text reply is read: {kind: last_bracket} (default) |
                    {kind: last_bracket_contains, keywords: [a, b], otherwise: c} (OR-Bench) |
                    {kind: rating, patterns: [regex, backup regex]} (MT-Bench) |
                    {kind: md_judge, marker: null | "[RESULT]"} (SALAD-BENCH's rule)
                    {kind: first_label} (XSTest: the first class named, or its number)
    user, system    the judge prompt, with {field} slots (system optional)
    raw             true = feed `user` as plain text, without the judge's chat template
    strip_fields    true = fill the slots with the values' .strip() (SALAD-BENCH's evaluator)
    judge_decoding  the protocol's judge settings (e.g. {temperature: 0, max_tokens: 2048}),
                    used for the judge config keys that are unset (null)
Other keys (e.g. MT-Bench's protocol settings) are kept in `PromptFile.data`. A prompt file
without `user` (MT-Bench: its prompts are FastChat's judge_prompts.jsonl) only gives the rules.
The sha256 of the file's bytes goes into every score file that used it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from mixmerge.judge.base import JudgePrompt, VerdictParser


@dataclass(frozen=True)
class PromptTemplate:
    """A judge prompt with `{field}` slots and the parser that reads the judge's replies."""

    name: str
    user: str
    labels: tuple[str, ...]
    system: str | None = None
    source: str = ""
    parser: VerdictParser | None = None
    sha256: str = ""
    raw: bool = False
    decoding: dict[str, Any] = field(default_factory=dict)
    strip_fields: bool = False

    def __post_init__(self) -> None:
        if self.parser is None:
            object.__setattr__(
                self, "parser", VerdictParser(kind="last_bracket", labels=tuple(self.labels))
            )

    def render(self, **fields: str) -> JudgePrompt:
        # str.format only expands braces in the template, so braces inside model responses are safe.
        if self.strip_fields:
            fields = {k: v.strip() if isinstance(v, str) else v for k, v in fields.items()}
        try:
            user = self.user.format(**fields)
            system = self.system.format(**fields) if self.system else None
        except KeyError as err:
            raise KeyError(f"judge prompt {self.name!r} needs field {err.args[0]!r}") from None
        return JudgePrompt(user=user, system=system, raw=self.raw)

    def meta(self) -> dict[str, str]:
        """What a score file records about the prompt."""
        return {
            "judge_prompt": self.name,
            "judge_prompt_sha256": self.sha256,
            "judge_prompt_source": self.source,
        }


@dataclass(frozen=True)
class PromptFile:
    name: str
    data: dict[str, Any]
    sha256: str
    parser: VerdictParser
    source: str = ""

    @property
    def decoding(self) -> dict[str, Any]:
        return dict(self.data.get("judge_decoding") or {})

    def template(self) -> PromptTemplate:
        if "user" not in self.data:
            raise ValueError(f"judge prompt file {self.name!r} has no `user` prompt")
        return PromptTemplate(
            name=self.name,
            user=self.data["user"],
            labels=self.parser.labels,
            system=self.data.get("system"),
            source=self.source,
            parser=self.parser,
            sha256=self.sha256,
            raw=bool(self.data.get("raw", False)),
            decoding=self.decoding,
            strip_fields=bool(self.data.get("strip_fields", False)),
        )


def prompt_names() -> list[str]:
    folder = resources.files("mixmerge.judge").joinpath("prompts")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@functools.cache
def load_prompt_file(name: str) -> PromptFile:
    """Load and check mixmerge/judge/prompts/<name>.yaml (once per process: package data)."""
    path = resources.files("mixmerge.judge").joinpath("prompts", f"{name}.yaml")
    if not path.is_file():
        raise FileNotFoundError(
            f"no judge prompt named {name!r} (known: {', '.join(prompt_names())})"
        )
    raw = path.read_bytes()
    data = yaml.safe_load(raw.decode("utf-8"))
    if not isinstance(data, dict) or "labels" not in data:
        raise ValueError(f"judge prompt {name!r} lacks the key 'labels'")
    parser = VerdictParser.from_spec(
        data.get("parse") or {}, data["labels"], data.get("verdict_format")
    )
    return PromptFile(
        name=name,
        data=data,
        sha256=hashlib.sha256(raw).hexdigest(),
        parser=parser,
        source=str(data.get("source", "")),
    )


def load_prompt(name: str) -> PromptTemplate:
    """The prompt template of mixmerge/judge/prompts/<name>.yaml."""
    return load_prompt_file(name).template()
