"""The workflow's rules as the tests read them from workflow/rules/*.smk: each rule's text, its
conda env and the `mixmerge` verb its shell command runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"


def rule_blocks() -> Iterator[tuple[Path, str, str]]:
    """(rule file, rule name, the rule's text) for every rule."""
    for path in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.M)[1:]:
            yield path, re.match(r"rule (\w+):", block).group(1), block


def rules() -> dict[str, dict[str, str | None]]:
    """rule name -> {env, verb}: the `conda:` file's stem and the `mixmerge <verb>` it runs."""
    out = {}
    for _, name, block in rule_blocks():
        conda = re.search(r"^    conda:\n\s+\"\.\./\.\./envs/(\w+)\.yaml\"", block, re.M)
        # `{params.launcher}` is `mixmerge` or `accelerate launch ... -m mixmerge.cli`
        shell = block.split("    shell:", 1)
        verb = re.search(r"(?:\bmixmerge|\{params\.launcher\}) (\w+)", shell[-1])
        out[name] = {
            "env": conda.group(1) if conda else None,
            "verb": verb.group(1) if len(shell) == 2 and verb else None,
        }
    return out
