"""LLM judges for the judged benchmarks (MT-Bench, HaluEval-Wild, SaladBench, OR-Bench).

    template = load_prompt("or_bench")
    verdicts, info = run_judge(judge_config(eval_cfg, bench_cfg), prompts, template.parser)

Backends are imported lazily so that `import mixmerge.judge` needs neither torch nor openai.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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

__all__ = [
    "Judge",
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

JUDGE_BACKENDS = ("hf", "openai", "local")  # local = hf in likelihood mode (older name)


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


def make_judge(judge_cfg: dict[str, Any], cache_dir: str | Path | None = None) -> Judge:
    """Build the judge described by a judge config (see `judge_config`).

    Common: backend ("hf" | "openai"; "local" = hf with mode likelihood), model (required),
        temperature (0.0), max_tokens (null: openai = server default, hf = 512),
        cache_dir (null = no cache; the `cache_dir` argument wins).
    openai: base_url (null = api.openai.com), api_key_env ("OPENAI_API_KEY"; null = no key),
        max_retries (3 re-asks on an unparsable reply), api_max_retries (8 retries with
        exponential backoff + jitter on 429/408/409/5xx/timeouts/connection errors),
        backoff_base (1 s), backoff_max (60 s), timeout (120 s), concurrency (8),
        price_input_per_1k / price_output_per_1k (USD per 1k tokens; null = no cost estimate).
    hf: mode ("generate" | "likelihood"), device (null = cuda if available else cpu),
        dtype ("auto"), batch_size (8), max_length (null = the model's context length),
        revision (null), trust_remote_code (false: an explicit opt-in, it runs hub code).
    """
    backend = judge_cfg.get("backend", "hf")
    model = judge_cfg.get("model")
    cache = cache_dir if cache_dir is not None else judge_cfg.get("cache_dir")
    if backend == "openai":
        from mixmerge.judge.openai_judge import OpenAIJudge

        return OpenAIJudge(
            model,
            base_url=judge_cfg.get("base_url"),
            api_key_env=judge_cfg.get("api_key_env", "OPENAI_API_KEY"),
            temperature=float(judge_cfg.get("temperature", 0.0)),
            max_tokens=judge_cfg.get("max_tokens"),
            max_retries=int(judge_cfg.get("max_retries", 3)),
            api_max_retries=int(judge_cfg.get("api_max_retries", 8)),
            timeout=float(judge_cfg.get("timeout", 120.0)),
            concurrency=int(judge_cfg.get("concurrency", 8)),
            backoff_base=float(judge_cfg.get("backoff_base", 1.0)),
            backoff_max=float(judge_cfg.get("backoff_max", 60.0)),
            price_input_per_1k=judge_cfg.get("price_input_per_1k"),
            price_output_per_1k=judge_cfg.get("price_output_per_1k"),
            cache_dir=cache,
        )
    if backend in ("hf", "local"):
        from mixmerge.judge.hf import HFJudge

        default_mode = "likelihood" if backend == "local" else "generate"
        return HFJudge(
            model,
            mode=judge_cfg.get("mode") or default_mode,
            device=judge_cfg.get("device"),
            dtype=judge_cfg.get("dtype", "auto"),
            batch_size=int(judge_cfg.get("batch_size", 8)),
            max_length=judge_cfg.get("max_length"),
            max_tokens=judge_cfg.get("max_tokens"),
            temperature=float(judge_cfg.get("temperature", 0.0)),
            revision=judge_cfg.get("revision"),
            trust_remote_code=bool(judge_cfg.get("trust_remote_code", False)),
            cache_dir=cache,
        )
    raise ValueError(f"unknown judge backend {backend!r} (known: {', '.join(JUDGE_BACKENDS)})")


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
