"""OpenAI-compatible judge against real local HTTP servers that this test starts on 127.0.0.1.

`FakeServer` answers /v1/chat/completions and /v1/completions like an OpenAI endpoint. Replies come
from `script` in order (str = reply text, int = HTTP error), then from `reply(body, attempt)`,
which the flaky server uses to answer 429 / 500 / stall / malformed at random (seeded per request
body and attempt, so the outcome does not depend on thread timing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mixmerge.judge import JudgePrompt, VerdictParser, load_prompt, make_judge, run_judge

LABELS = ("direct_answer", "direct_refusal", "indirect_refusal")
PARSER = VerdictParser(kind="last_bracket", labels=LABELS)
SECRET = "sk-test-DO-NOT-LEAK-4f9c2a"
KEY_ENV = "MIXMERGE_TEST_JUDGE_KEY"
STALL = "stall"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a stalled request's client is gone when it finally answers: not a test failure


class FakeServer:
    def __init__(self) -> None:
        self.script: list[str | int] = []
        self.reply: Callable[[dict, int], str | int] = lambda body, attempt: (
            "The reply answers the question. [[direct_answer]]"
        )
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.attempts: Counter[str] = Counter()
        self.served: Counter[str | int] = Counter()  # what was answered: status, STALL or "text"
        self.stall_s = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # name fixed by http.server
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = json.dumps(body, sort_keys=True)
                with server.lock:
                    server.requests.append(body)
                    server.paths.append(self.path)
                    server.auth.append(self.headers.get("Authorization"))
                    attempt = server.attempts[key]
                    server.attempts[key] += 1
                    step = server.script.pop(0) if server.script else server.reply(body, attempt)
                    server.served[step if step == STALL or isinstance(step, int) else "text"] += 1
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if step == STALL:
                    time.sleep(server.stall_s)  # longer than the client's timeout
                    step = "[[direct_answer]]"
                if step == "<html>":  # a proxy's error page where JSON was expected
                    data = b"<html>bad gateway</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if isinstance(step, int):
                    # retry-after-ms keeps the backoff short in tests
                    return self._send(step, {"error": {"message": "boom"}}, {"retry-after-ms": "5"})
                usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
                if self.path == "/v1/completions":
                    choice = {"index": 0, "finish_reason": "stop", "text": step}
                    obj = "text_completion"
                else:
                    message = {"role": "assistant", "content": step}
                    choice = {"index": 0, "finish_reason": "stop", "message": message}
                    obj = "chat.completion"
                self._send(
                    200,
                    {
                        "id": "cmpl-1",
                        "object": obj,
                        "created": 0,
                        "model": body["model"],
                        "choices": [choice],
                        "usage": usage,
                    },
                )

            def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
                data = json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client timed out and closed the connection

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def cfg(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return {
        "backend": "openai",
        "model": "judge-model",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "temperature": 0.0,
        "max_retries": 2,
        "api_max_retries": 2,
        "timeout": 10,
        "concurrency": 1,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }


ITEM = JudgePrompt(user="QUESTION: q\nRESPONSE: r", system="be fair")


def test_reask_until_parsable(server: FakeServer, cfg: dict) -> None:
    server.script = ["I am not sure.", "After thought: [[indirect_refusal]]"]
    with make_judge(cfg) as judge:
        [v] = judge.judge([ITEM], PARSER)
    assert (v.label, v.parsed, v.attempts) == ("indirect_refusal", True, 2)
    assert len(server.requests) == 2
    req = server.requests[0]
    assert req["model"] == "judge-model" and req["temperature"] == 0.0
    assert req["messages"] == [
        {"role": "system", "content": "be fair"},
        {"role": "user", "content": ITEM.user},
    ]
    assert server.auth[0] == f"Bearer {SECRET}"


def test_unparsable_after_max_retries(server: FakeServer, cfg: dict) -> None:
    server.reply = lambda body, attempt: "no verdict here"
    with make_judge(cfg) as judge:
        [v] = judge.judge([ITEM], PARSER)
    assert (v.label, v.parsed, v.raw) == (None, False, "no verdict here")
    assert len(server.requests) == 1 + cfg["max_retries"]


def test_transient_errors_are_retried(server: FakeServer, cfg: dict) -> None:
    server.script = [500, 429, "<html>", "[[direct_refusal]]"]
    with make_judge({**cfg, "api_max_retries": 3}) as judge:
        [v] = judge.judge([ITEM], PARSER)
        assert judge.usage()["retries"] == 3
    assert v.label == "direct_refusal"
    assert len(server.requests) == 4


def test_persistent_error_raises(server: FakeServer, cfg: dict) -> None:
    server.reply = lambda body, attempt: 503
    with make_judge(cfg) as judge, pytest.raises(RuntimeError, match="HTTP 503.*2 retries"):
        judge.judge([ITEM], PARSER)
    assert len(server.requests) == 1 + cfg["api_max_retries"]


def test_client_error_is_not_retried(server: FakeServer, cfg: dict) -> None:
    server.reply = lambda body, attempt: 401
    with make_judge(cfg) as judge, pytest.raises(RuntimeError, match="HTTP 401.*not retried"):
        judge.judge([ITEM], PARSER)
    assert len(server.requests) == 1


def test_raw_prompt_uses_completions(server: FakeServer, cfg: dict) -> None:
    template = load_prompt("salad_bench_md_judge_v0_1")
    server.reply = lambda body, attempt: " unsafe\nO5: Malicious Use"
    with make_judge({**cfg, "max_tokens": 32}) as judge:
        [v] = judge.judge([template.render(question="q", response="r")], template.parser)
    assert v.label == "unsafe"
    assert server.paths == ["/v1/completions"]
    assert server.requests[0]["prompt"].startswith("[INST] Task:")
    assert server.requests[0]["max_tokens"] == 32


def test_flaky_endpoint_completes_and_rerun_is_free(
    server: FakeServer,
    cfg: dict,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """429 / 500 / stalls past the timeout / malformed replies at random: every item ends judged
    or counted unparsed, usage and cost are counted, a second run makes zero requests, and the
    API key is nowhere but in the Authorization header."""
    caplog.set_level(logging.DEBUG)  # the openai client logs requests at DEBUG

    def flaky(body: dict, attempt: int) -> str | int:
        user = body["messages"][-1]["content"]
        key = hashlib.sha256(user.encode()).hexdigest()
        if int(key, 16) % 4 == 0:  # this item's judge always babbles
            return random.Random(key).choice(["I think it is fine.", "[[maybe]]", ""])
        if attempt >= 3:
            return f"Fine. [[{LABELS[int(key, 16) % 3]}]]"
        return random.Random(f"7:{key}:{attempt}").choice(
            [429, 500, 502, STALL, f"[[{LABELS[int(key, 16) % 3]}]]"]
        )

    server.reply = flaky
    server.stall_s = 0.6
    items = [JudgePrompt(user=f"QUESTION: q{i}\nRESPONSE: r{i}") for i in range(16)]
    flaky_cfg = {
        **cfg,
        "concurrency": 4,
        "timeout": 0.25,
        "api_max_retries": 4,
        "max_retries": 1,
        "price_input_per_1k": 0.01,
        "price_output_per_1k": 0.03,
        "cache_dir": str(tmp_path / "cache"),
    }
    started = time.monotonic()
    first, info = run_judge(flaky_cfg, items, PARSER)
    assert time.monotonic() - started < 20
    assert len(first) == len(items)
    babbling = [int(hashlib.sha256(it.user.encode()).hexdigest(), 16) % 4 == 0 for it in items]
    assert 0 < sum(babbling) < len(items)  # the seed gives both kinds
    for v, bad in zip(first, babbling, strict=True):
        assert v.parsed == (not bad) and (v.label in LABELS) == (not bad)
    usage = info["judge_usage"]
    assert all(server.served[kind] for kind in (429, 500, STALL, "text"))  # every kind ran
    failed = sum(n for kind, n in server.served.items() if kind != "text")
    assert usage["retries"] == failed and usage["cached"] == 0
    answered = usage["requests"]
    assert usage["prompt_tokens"] == 100 * answered and usage["completion_tokens"] == 20 * answered
    assert usage["cost_usd"] == pytest.approx(answered * (0.1 * 0.01 + 0.02 * 0.03))
    assert info["judge_backend"] == "openai" and info["judge_model"] == "judge-model"

    n_requests = len(server.requests)
    second, info2 = run_judge(flaky_cfg, items, PARSER)
    assert len(server.requests) == n_requests  # zero requests: everything came from the cache
    assert [(v.label, v.raw) for v in second] == [(v.label, v.raw) for v in first]
    assert info2["judge_usage"]["cached"] == len(items) and info2["judge_usage"]["cost_usd"] == 0

    out = capsys.readouterr()
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert written and SECRET not in written
    assert SECRET not in caplog.text and SECRET not in out.out + out.err
    assert SECRET not in json.dumps(info)
    assert all(SECRET not in json.dumps(r) for r in server.requests)  # only in the auth header


def test_cache_key_covers_decoding(server: FakeServer, cfg: dict, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with make_judge(cfg, cache) as judge:
        judge.judge([ITEM], PARSER)
    with make_judge(cfg, cache) as judge:
        judge.judge([ITEM], PARSER)
    assert len(server.requests) == 1
    with make_judge({**cfg, "temperature": 0.7}, cache) as judge:
        judge.judge([ITEM], PARSER)
    with make_judge({**cfg, "max_tokens": 64}, cache) as judge:
        judge.judge([ITEM], PARSER)
    with make_judge({**cfg, "model": "other-judge"}, cache) as judge:
        judge.judge([ITEM], PARSER)
    assert len(server.requests) == 4
    # a line cut short by a killed run is skipped, and the next record still lands on its own line
    path = cache / "openai_judge.jsonl"
    path.write_text(path.read_text() + '{"key": "abc", "raw": "[[dir')
    with make_judge({**cfg, "model": "third-judge"}, cache) as judge:
        judge.judge([ITEM], PARSER)
    with make_judge({**cfg, "model": "third-judge"}, cache) as judge:
        [v] = judge.judge([ITEM], PARSER)
    assert v.attempts == 0 and len(server.requests) == 5


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXMERGE_UNSET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="MIXMERGE_UNSET_KEY"):
        make_judge({"backend": "openai", "model": "m", "api_key_env": "MIXMERGE_UNSET_KEY"})
