"""Judge backend for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM serve, ...)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mixmerge.judge.base import Judge, JudgePrompt, Verdict, parse_verdict
from mixmerge.judge.cache import JsonlCache, cache_key

log = logging.getLogger(__name__)

CACHE_FILE = "openai_judge.jsonl"


def read_api_key(api_key_env: str | None) -> str:
    """The key from the environment variable named `api_key_env`; errors name the variable only.

    `api_key_env: null` is for endpoints without authentication (e.g. a local `vllm serve`),
    which still need some non-empty key for the client.
    """
    if not api_key_env:
        return "EMPTY"
    key = os.environ.get(api_key_env, "")
    if not key.strip():
        raise RuntimeError(
            f"judge backend 'openai' needs an API key in the environment variable {api_key_env}, "
            "which is not set"
        )
    return key.strip()


class OpenAIJudge(Judge):
    """Ask the judge model; re-ask up to `max_retries` times while the verdict can't be parsed.

    Transport errors (429, 5xx, timeouts, connection errors) are retried with exponential backoff
    by the openai client itself (`api_max_retries`). Replies are cached in `cache_dir`.
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_retries: int = 3,
        api_max_retries: int = 5,
        timeout: float = 120.0,
        max_tokens: int | None = None,
        concurrency: int = 8,
        cache_dir: str | Path | None = None,
    ) -> None:
        from openai import OpenAI

        if not model:
            raise ValueError("judge backend 'openai' needs evaluate.judge.model (the model name)")
        if max_retries < 0 or api_max_retries < 0 or concurrency < 1:
            raise ValueError("judge max_retries/api_max_retries must be >= 0, concurrency >= 1")
        self.model = str(model)
        self.temperature = float(temperature)
        self.max_retries = int(max_retries)
        self.max_tokens = max_tokens
        self.concurrency = int(concurrency)
        # The key goes straight into the client; it is not kept on this object or logged.
        self._client = OpenAI(
            api_key=read_api_key(api_key_env),
            base_url=base_url or None,
            max_retries=int(api_max_retries),
            timeout=float(timeout),
        )
        self._cache = JsonlCache(Path(cache_dir) / CACHE_FILE) if cache_dir else None
        self.n_requests = 0  # requests that returned a reply (for logs and tests)

    def _ask(self, item: JudgePrompt) -> str:
        from openai import APIError

        messages: list[dict[str, str]] = []
        if item.system:
            messages.append({"role": "system", "content": item.system})
        messages.append({"role": "user", "content": item.user})
        kwargs: dict[str, Any] = {}
        if self.max_tokens is not None:
            kwargs["max_tokens"] = int(self.max_tokens)
        try:
            reply = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=self.temperature, **kwargs
            )
        except APIError as err:
            status = getattr(err, "status_code", None)
            raise RuntimeError(
                f"judge request to {self.model!r} failed "
                f"({type(err).__name__}{f', HTTP {status}' if status else ''}; transient errors "
                f"were retried {self._client.max_retries} times); cached verdicts are kept"
            ) from err
        self.n_requests += 1
        if not reply.choices:
            return ""
        return reply.choices[0].message.content or ""

    def _judge(self, item: JudgePrompt, labels: Sequence[str]) -> Verdict:
        key = cache_key(self.model, item.system, item.user, self.temperature)
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            raw = str(hit.get("raw", ""))
            label = parse_verdict(raw, labels)
            return Verdict(label=label, raw=raw, parsed=label is not None, attempts=0)
        raw, label, attempts = "", None, 0
        for attempts in range(1, self.max_retries + 2):
            raw = self._ask(item)
            label = parse_verdict(raw, labels)
            if label is not None:
                break
            log.debug("judge reply has no valid [[label]] (attempt %d)", attempts)
        if self._cache is not None:
            # Unparsable final replies are cached too: reruns stay free and reproducible.
            self._cache.put(key, {"model": self.model, "temperature": self.temperature, "raw": raw})
        return Verdict(label=label, raw=raw, parsed=label is not None, attempts=attempts)

    def classify(self, items: Sequence[JudgePrompt], labels: Sequence[str]) -> list[Verdict]:
        from tqdm.auto import tqdm

        if not labels:
            raise ValueError("classify needs at least one label")
        items = list(items)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            # map keeps input order; requests run `concurrency` at a time.
            verdicts = list(
                tqdm(
                    pool.map(lambda it: self._judge(it, labels), items),
                    total=len(items),
                    desc=f"judge {self.model}",
                    unit="item",
                )
            )
        cached = sum(v.attempts == 0 for v in verdicts)
        unparsed = sum(not v.parsed for v in verdicts)
        log.info(
            "judge %s: %d items, %d from cache, %d unparsed",
            self.model,
            len(items),
            cached,
            unparsed,
        )
        return verdicts

    def close(self) -> None:
        self._client.close()
