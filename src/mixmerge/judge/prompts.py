"""Judge prompt templates stored as YAML data files in mixmerge/judge/prompts/."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

from mixmerge.judge.base import JudgePrompt


@dataclass(frozen=True)
class PromptTemplate:
    """A judge prompt with `{field}` slots, the labels it asks for, and where it comes from."""

    name: str
    user: str
    labels: tuple[str, ...]
    system: str | None = None
    source: str = ""

    def render(self, **fields: str) -> JudgePrompt:
        # str.format only expands braces in the template, so braces inside model responses are safe.
        try:
            user = self.user.format(**fields)
            system = self.system.format(**fields) if self.system else None
        except KeyError as err:
            raise KeyError(f"judge prompt {self.name!r} needs field {err.args[0]!r}") from None
        return JudgePrompt(user=user, system=system)


def load_prompt(name: str) -> PromptTemplate:
    """Load mixmerge/judge/prompts/<name>.yaml."""
    path = resources.files("mixmerge.judge").joinpath("prompts", f"{name}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"no judge prompt named {name!r} (looked for {path})")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = {"user", "labels"} - set(data)
    if missing:
        raise ValueError(f"judge prompt {name!r} lacks keys: {', '.join(sorted(missing))}")
    return PromptTemplate(
        name=name,
        user=data["user"],
        labels=tuple(data["labels"]),
        system=data.get("system"),
        source=data.get("source", ""),
    )
