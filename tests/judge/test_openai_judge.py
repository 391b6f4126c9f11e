"""OpenAI-compatible judge against a canned chat-completions server that this test starts locally."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mixmerge.judge import JudgePrompt, make_judge

LABELS = ["direct_answer", "direct_refusal", "indirect_refusal"]
SECRET = "sk-test-DO-NOT-LEAK-4f9c2a"
KEY_ENV = "MIXMERGE_TEST_JUDGE_KEY"


class FakeServer:
    """Replies from `script` in order (str = reply text, int = HTTP error), then `default`."""

    def __init__(self) -> None:
        self.script: list[str | int] = []
        self.default = "The reply answers the question. [[direct_answer]]"
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # name fixed by http.server
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    step = server.script.pop(0) if server.script else server.default
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if isinstance(step, int):
                    # retry-after-ms keeps the client's backoff short in tests
                    return self._send(step, {"error": {"message": "boom"}}, {"retry-after-ms": "5"})
                self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": step},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
    }


ITEM = JudgePrompt(user="QUESTION: q\nRESPONSE: r", system="be fair")


def test_reask_until_parsable(server: FakeServer, cfg: dict) -> None:
    server.script = ["I am not sure.", "After thought: [[indirect_refusal]]"]
    with make_judge(cfg, None) as judge:
        [v] = judge.classify([ITEM], LABELS)
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
    server.default = "no verdict here"
    with make_judge(cfg, None) as judge:
        [v] = judge.classify([ITEM], LABELS)
    assert (v.label, v.parsed, v.raw) == (None, False, "no verdict here")
    assert len(server.requests) == 1 + cfg["max_retries"]


def test_server_error_is_retried(server: FakeServer, cfg: dict) -> None:
    server.script = [500, "[[direct_refusal]]"]
    with make_judge(cfg, None) as judge:
        [v] = judge.classify([ITEM], LABELS)
    assert v.label == "direct_refusal"
    assert len(server.requests) == 2


def test_persistent_error_raises(server: FakeServer, cfg: dict) -> None:
    server.script = [500] * 10
    with make_judge(cfg, None) as judge, pytest.raises(RuntimeError, match="HTTP 500"):
        judge.classify([ITEM], LABELS)
    assert len(server.requests) == 1 + cfg["api_max_retries"]


def test_cache_and_key_never_written(
    server: FakeServer,
    cfg: dict,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # the openai client logs requests at DEBUG
    # concurrency 2: which item gets which scripted reply varies, the checks below do not
    items = [ITEM, JudgePrompt(user="another"), JudgePrompt(user="third")]
    server.script = ["[[direct_answer]]", "hmm", "[[direct_refusal]]", "garbage", "junk", "x"]
    cache = tmp_path / "cache"
    with make_judge({**cfg, "concurrency": 2}, cache) as judge:
        first = judge.classify(items, LABELS)
    n_first = len(server.requests)
    # the unparsable item is cached as is: a rerun pays nothing
    with make_judge(cfg, cache) as judge:
        second = judge.classify(items, LABELS)
    assert len(server.requests) == n_first
    assert [v.label for v in second] == [v.label for v in first]
    assert all(v.attempts == 0 for v in second)
    assert sum(v.parsed for v in first) >= 2
    # a different temperature is a different request
    server.script = []
    with make_judge({**cfg, "temperature": 0.7}, cache) as judge:
        judge.classify([ITEM], LABELS)
    assert len(server.requests) == n_first + 1

    out = capsys.readouterr()
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert written and SECRET not in written
    assert SECRET not in caplog.text and SECRET not in out.out + out.err
    assert all(SECRET not in json.dumps(r) for r in server.requests)  # only in the auth header


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXMERGE_UNSET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="MIXMERGE_UNSET_KEY"):
        make_judge({"backend": "openai", "model": "m", "api_key_env": "MIXMERGE_UNSET_KEY"})
