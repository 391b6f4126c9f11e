"""Judge backend for any OpenAI-compatible endpoint (OpenAI, `vllm serve`, other local servers).

- Transient failures (HTTP 429, 408, 409, 5xx, timeouts, connection errors) are retried up to
  `api_max_retries` times with exponential backoff and jitter (a server's Retry-After is honoured,
  up to `backoff_max`); other errors (401, 404, 400...) stop the run at once with a one-line error.
- At most `concurrency` requests are in flight.
- Every reply is appended to a persistent cache (`<cache_dir>/openai_judge.jsonl`) as soon as it
  arrives, keyed by (judge model, full request, decoding settings): a rerun, or a run after a
  crash, never pays twice for a verdict.
- A reply that cannot be parsed is re-asked up to `max_retries` times, then recorded as unparsed.
- Token usage is counted per judge; with both prices set, a cost estimate in USD.
- The API key is read from the environment variable named by `api_key_env`, handed to the client
  and never stored, logged or cached.
- Prompts with `raw: true` go to the completions endpoint (plain text, no chat template).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mixmerge.judge.base import Judge, JudgePrompt, Verdict, VerdictParser
from mixmerge.judge.cache import JsonlCache, cache_key
from mixmerge.judge.settings import JudgeSettings, register_backend

log = logging.getLogger(__name__)

CACHE_FILE = "openai_judge.jsonl"
RETRY_STATUS = {408, 409, 429}  # plus every 5xx


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


def _retry_after(err: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms / retry-after headers), if any."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                return None
    return None


class OpenAIJudge(Judge):
    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        max_retries: int = 3,
        api_max_retries: int = 8,
        timeout: float = 120.0,
        concurrency: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        price_input_per_1k: float | None = None,
        price_output_per_1k: float | None = None,
        cache_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        from openai import OpenAI

        if not model:
            raise ValueError("judge backend 'openai' needs evaluate.judge.model (the model name)")
        if max_retries < 0 or api_max_retries < 0 or concurrency < 1:
            raise ValueError("judge max_retries/api_max_retries must be >= 0, concurrency >= 1")
        if backoff_base < 0 or backoff_max < 0 or timeout <= 0:
            raise ValueError("judge backoff_base/backoff_max must be >= 0 and timeout > 0")
        self.model = str(model)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.max_retries = int(max_retries)
        self.api_max_retries = int(api_max_retries)
        self.concurrency = int(concurrency)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.prices = (price_input_per_1k, price_output_per_1k)
        # Our own retry loop (below) does the backoff, so the client must not retry as well.
        # The key goes straight into the client; it is not kept on this object or logged.
        self._client = OpenAI(
            api_key=read_api_key(api_key_env),
            base_url=base_url or None,
            max_retries=0,
            timeout=float(timeout),
        )
        self._cache = JsonlCache(Path(cache_dir) / CACHE_FILE) if cache_dir else None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._usage = {
            "requests": 0,  # answered requests, re-asks included
            "retries": 0,  # transient failures that were retried
            "cached": 0,  # items answered from the cache
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        self.n_requests = 0  # every HTTP attempt, failed ones included (for tests and logs)

    # -- bookkeeping ------------------------------------------------------------------------
    def usage(self) -> dict[str, Any]:
        with self._lock:
            usage: dict[str, Any] = dict(self._usage)
        price_in, price_out = self.prices
        usage["cost_usd"] = (
            round(
                usage["prompt_tokens"] / 1000 * float(price_in)
                + usage["completion_tokens"] / 1000 * float(price_out),
                6,
            )
            if price_in is not None and price_out is not None
            else None
        )
        return usage

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._usage[name] += delta

    def _decoding(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    @staticmethod
    def _request(item: JudgePrompt) -> Any:
        """What is sent, in the form the cache key is computed over."""
        if item.raw:
            return {"prompt": item.user}
        messages: list[dict[str, str]] = []
        if item.system:
            messages.append({"role": "system", "content": item.system})
        messages.append({"role": "user", "content": item.user})
        return {"messages": messages}

    # -- one HTTP request, with retries -----------------------------------------------------
    def _backoff(self, attempt: int, err: Exception) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2**attempt)
        delay = cap / 2 + self._rng.uniform(0, cap / 2)  # "equal jitter": spread, never zero
        asked = _retry_after(err)
        return min(max(delay, asked), self.backoff_max) if asked is not None else delay

    def _send(self, request: dict[str, Any]) -> str:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "temperature": self.temperature}
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        for attempt in range(self.api_max_retries + 1):
            with self._lock:
                self.n_requests += 1
            try:
                if "prompt" in request:
                    reply = self._client.completions.create(prompt=request["prompt"], **kwargs)
                    text = reply.choices[0].text if reply.choices else ""
                else:
                    reply = self._client.chat.completions.create(
                        messages=request["messages"], **kwargs
                    )
                    text = (reply.choices[0].message.content if reply.choices else "") or ""
            except (openai.APIError, ValueError) as err:
                # Connection errors and timeouts (APITimeoutError) carry no status; neither does a
                # 200 reply whose body is not the expected JSON (a proxy's error page, raised as
                # a JSON/validation ValueError): all retried.
                status = getattr(err, "status_code", None)
                transient = status is None or status in RETRY_STATUS or status >= 500
                what = f"{type(err).__name__}{f', HTTP {status}' if status else ''}"
                if not transient:
                    raise RuntimeError(
                        f"judge request to {self.model!r} failed ({what}); not retried"
                    ) from err
                if attempt == self.api_max_retries:
                    raise RuntimeError(
                        f"judge request to {self.model!r} failed ({what}) after "
                        f"{self.api_max_retries} retries; verdicts so far are cached, rerun to resume"
                    ) from err
                delay = self._backoff(attempt, err)
                log.debug("judge: %s, retry %d in %.2fs", what, attempt + 1, delay)
                self._count(retries=1)
                time.sleep(delay)
                continue
            usage = getattr(reply, "usage", None)
            self._count(
                requests=1,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            )
            return text
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one item, with re-asks and the cache -----------------------------------------------
    def _judge_one(self, item: JudgePrompt, parser: VerdictParser) -> Verdict:
        request = self._request(item)
        key = cache_key(self.model, request, self._decoding())
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            self._count(cached=1)
            raw = str(hit.get("raw", ""))
            label = parser.parse(raw)
            return Verdict(label=label, raw=raw, parsed=label is not None, attempts=0)
        raw, label, attempts = "", None, 0
        for attempts in range(1, self.max_retries + 2):
            raw = self._send(request)
            label = parser.parse(raw)
            if label is not None:
                break
            log.debug("judge reply has no valid verdict (attempt %d)", attempts)
        if self._cache is not None:
            # Unparsable final replies are cached too: reruns stay free and reproducible.
            self._cache.put(key, {"model": self.model, **self._decoding(), "raw": raw})
        return Verdict(label=label, raw=raw, parsed=label is not None, attempts=attempts)

    def judge(self, items: Sequence[JudgePrompt], parser: VerdictParser) -> list[Verdict]:
        from tqdm.auto import tqdm

        items = list(items)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        futures = [pool.submit(self._judge_one, it, parser) for it in items]
        try:
            # Results in input order; requests run `concurrency` at a time.
            verdicts = [
                f.result()
                for f in tqdm(futures, total=len(items), desc=f"judge {self.model}", unit="item")
            ]
        except BaseException:
            # One item failed for good (or Ctrl-C): requests already running finish and are
            # cached, queued ones are dropped instead of hammering a dead endpoint.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        usage = self.usage()
        log.info(
            "judge %s: %d items, %d from cache, %d unparsed, %d requests, %d retried",
            self.model,
            len(items),
            sum(v.attempts == 0 for v in verdicts),
            sum(not v.parsed for v in verdicts),
            usage["requests"],
            usage["retries"],
        )
        return verdicts

    def close(self) -> None:
        self._client.close()


def from_settings(settings: JudgeSettings, cache_dir: str | Path | None) -> OpenAIJudge:
    """The `openai` backend's factory (mixmerge/judge/settings.py)."""
    return OpenAIJudge(
        settings.model or "",
        base_url=settings.base_url,
        api_key_env=settings.key_variable,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        max_retries=settings.max_retries,
        api_max_retries=settings.api_max_retries,
        timeout=settings.timeout,
        concurrency=settings.concurrency,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        price_input_per_1k=settings.price_input_per_1k,
        price_output_per_1k=settings.price_output_per_1k,
        cache_dir=cache_dir,
    )


register_backend(
    "openai",
    from_settings,
    api_key_env="OPENAI_API_KEY",
    doc="any OpenAI-compatible chat endpoint (base_url)",
)
