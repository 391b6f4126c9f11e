"""Every verb the workflow's rules call exists in the CLI with the flags the rules pass."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mixmerge.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def test_every_rule_command_parses() -> None:
    subparsers = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    seen = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for verb, flags in re.findall(r'(?:mixmerge|launcher\}) (\w+) ([^>]*)', smk.read_text()):
            assert verb in subparsers, f"{smk.name}: mixmerge {verb} is not a CLI verb"
            seen.add(verb)
            parser = subparsers[verb]
            nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
            if nested:  # a verb with subverbs (`mixmerge report tables`): the subverb's flags
                subverb = flags.split()[0] if flags.split() else ""
                assert subverb in nested[0].choices, f"{smk.name}: no `mixmerge {verb} {subverb}`"
                parser = nested[0].choices[subverb]
            known = {o for a in parser._actions for o in a.option_strings}  # noqa: SLF001
            for flag in re.findall(r"(--[a-z-]+)", flags):
                assert flag in known, f"{smk.name}: mixmerge {verb} has no {flag}"
    assert {"tiny", "base", "data", "mix", "train", "select", "recipe", "merge", "evaluate", "report"} <= seen
