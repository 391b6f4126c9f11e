"""LLM judges for the judged benchmarks (MT-Bench, HaluEval-Wild, SaladBench, OR-Bench, XSTest).

    template = load_prompt("or_bench")
    verdicts, info = run_judge(judge_config(eval_cfg, bench_cfg), prompts, template.parser)

Backends are imported lazily so that `import mixmerge.judge` needs neither torch nor openai.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.judge.base import (
    Judge,
    JudgePrompt,
    Verdict,
    VerdictParser,
    normalize_label,
    parse_last_bracket_contains,
    parse_md_judge,
    parse_rating,
    parse_verdict,
    verdict_counts,
)
from mixmerge.judge.prompts import PromptFile, PromptTemplate, load_prompt, load_prompt_file
from mixmerge.judge.settings import JudgeSettings, backends, make_judge_from_settings

__all__ = [
    "Judge",
    "JudgeSettings",
    "backends",
    "JudgePrompt",
    "PromptFile",
    "PromptTemplate",
    "Verdict",
    "VerdictParser",
    "judge_config",
    "load_prompt",
    "load_prompt_file",
    "make_judge",
    "normalize_label",
    "parse_last_bracket_contains",
    "parse_md_judge",
    "parse_rating",
    "parse_verdict",
    "run_judge",
    "verdict_summary",
    "verdict_counts",
]

log = logging.getLogger(__name__)


def judge_config(
    eval_cfg: dict[str, Any], bench_cfg: dict[str, Any], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """evaluate.judge, overridden key by key by the benchmark's own `judge` block (e.g. SaladBench
    judged by MD-Judge while the others use an API judge). `defaults` (a prompt file's
    judge_decoding) fill keys left unset; device defaults to evaluate.device."""
    cfg = {**(eval_cfg.get("judge") or {}), **(bench_cfg.get("judge") or {})}
    for key, value in (defaults or {}).items():
        if cfg.get(key) is None:
            cfg[key] = value
    if not cfg.get("device"):
        cfg["device"] = eval_cfg.get("device")
    return cfg


def make_judge(
    judge_cfg: Mapping[str, Any] | JudgeSettings, cache_dir: str | Path | None = None
) -> Judge:
    """Build the judge a judge config block (see `judge_config`) or its settings describe: its
    backend's factory (mixmerge/judge/settings.py: `JudgeSettings` holds every key and default,
    `backends()` the backends, one module each under judge/backends/). The `cache_dir` argument wins over the settings' cache_dir."""
    settings = (
        judge_cfg if isinstance(judge_cfg, JudgeSettings) else JudgeSettings.from_config(judge_cfg)
    )
    return make_judge_from_settings(settings, cache_dir)


def run_judge(
    judge_cfg: dict[str, Any], prompts: Sequence[JudgePrompt], parser: VerdictParser
) -> tuple[list[Verdict], dict[str, Any]]:
    """Judge `prompts`; returns the verdicts and the judge's fields for the score file
    (backend, model, mode, usage: requests, cached, tokens, cost)."""
    if not judge_cfg.get("model"):
        raise ValueError("no judge configured: set evaluate.judge (backend, model)")
    with make_judge(judge_cfg) as judge:
        verdicts = judge.judge(list(prompts), parser) if prompts else []
        # items: the verdicts asked for; those not answered from the cache were new replies
        info = {**judge.describe(), "judge_usage": {"items": len(prompts), **judge.usage()}}
    return verdicts, info


def verdict_summary(
    verdicts: Sequence[Verdict], parser: VerdictParser, what: str
) -> dict[str, Any]:
    """counts per verdict, n_parsed, n_unparsed (warned about: left out of the score)."""
    counts = verdict_counts(verdicts, parser.labels)
    n_parsed = sum(v.parsed for v in verdicts)
    n_unparsed = len(verdicts) - n_parsed
    if n_unparsed:
        log.warning(
            "%s: %d of %d judge replies unparsable, left out of the score",
            what,
            n_unparsed,
            len(verdicts),
        )
    return {"counts": counts, "n_parsed": n_parsed, "n_unparsed": n_unparsed}
