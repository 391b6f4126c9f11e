"""LLM judges for the judged benchmarks (OR-Bench now; MT-Bench, HaluEval-Wild, SaladBench later).

    judge = make_judge(config["evaluate"]["judge"], cache_dir)
    verdicts = judge.classify([JudgePrompt(user=..., system=...)], ["label_a", "label_b"])

Backends are imported lazily so that `import mixmerge.judge` needs neither torch nor openai.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixmerge.judge.base import (
    Judge,
    JudgePrompt,
    Verdict,
    normalize_label,
    parse_verdict,
    verdict_counts,
)
from mixmerge.judge.prompts import PromptTemplate, load_prompt

__all__ = [
    "Judge",
    "JudgePrompt",
    "PromptTemplate",
    "Verdict",
    "load_prompt",
    "make_judge",
    "normalize_label",
    "parse_verdict",
    "verdict_counts",
]

JUDGE_BACKENDS = ("local", "openai")


def make_judge(judge_cfg: dict[str, Any], cache_dir: str | Path | None = None) -> Judge:
    """Build the judge described by config `evaluate.judge`.

    Common: backend ("local"), model (required).
    openai: base_url (null = api.openai.com), api_key_env ("OPENAI_API_KEY"; null = no key),
        temperature (0.0), max_retries (3: re-asks on an unparsable verdict),
        api_max_retries (5: client retries with backoff on 429/5xx/timeouts), timeout (120 s),
        max_tokens (null), concurrency (8); replies cached in `cache_dir` when given.
    local: device (null = cuda if available else cpu), dtype ("auto"), batch_size (8),
        max_length (null = the model's context length). No cache: it is cheap and deterministic.
    """
    backend = judge_cfg.get("backend", "local")
    model = judge_cfg.get("model")
    if backend == "openai":
        from mixmerge.judge.openai_judge import OpenAIJudge

        return OpenAIJudge(
            model,
            base_url=judge_cfg.get("base_url"),
            api_key_env=judge_cfg.get("api_key_env", "OPENAI_API_KEY"),
            temperature=float(judge_cfg.get("temperature", 0.0)),
            max_retries=int(judge_cfg.get("max_retries", 3)),
            api_max_retries=int(judge_cfg.get("api_max_retries", 5)),
            timeout=float(judge_cfg.get("timeout", 120.0)),
            max_tokens=judge_cfg.get("max_tokens"),
            concurrency=int(judge_cfg.get("concurrency", 8)),
            cache_dir=cache_dir,
        )
    if backend == "local":
        from mixmerge.judge.local import LocalJudge

        return LocalJudge(
            model,
            device=judge_cfg.get("device"),
            dtype=judge_cfg.get("dtype", "auto"),
            batch_size=int(judge_cfg.get("batch_size", 8)),
            max_length=judge_cfg.get("max_length"),
        )
    raise ValueError(f"unknown judge backend {backend!r} (known: {', '.join(JUDGE_BACKENDS)})")
