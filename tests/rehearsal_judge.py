"""A local OpenAI-compatible server that answers the paper configs' API judges in the rehearsal.

A test double, used only by tests: the pipeline talks to it through the real `openai` client
(OPENAI_BASE_URL), with the paper's own prompts and parsers. It recognises each judge prompt by
the verdict format the prompt asks for and answers in that format, with a verdict derived from a
hash of the prompt, so reruns get the same replies. A prompt it does not recognise gets HTTP 400:
a new judge prompt must be taught here, not answered by accident.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HUMMER_LABELS = (
    "helpful",
    "helpful_but_less_honest",
    "helpful_but_less_harmless",
    "honest",
    "honest_but_less_helpful",
    "honest_but_less_harmless",
    "harmless",
    "harmless_but_less_helpful",
    "harmless_but_less_honest",
)


def _pick(text: str, options: tuple[str, ...]) -> str:
    return options[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(options)]


def reply_for(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(kind, reply) for a judge conversation, None for a prompt this server does not know."""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    if '"[[rating]]"' in text:  # FastChat's single-v1 / single-math-v1 (+ multi-turn)
        rating = _pick(text, tuple(str(n) for n in range(1, 11)))
        return "mt_bench", f"The answer is short but on topic.\n\nRating: [[{rating}]]"
    if "[[no_hallucination]]" in text:  # mixmerge's HaluEval-Wild prompt
        verdict = _pick(text, ("hallucination", "no_hallucination"))
        return "halueval_wild", f"Compared with the reference answer.\n[[{verdict}]]"
    if "indirect_refusal" in text and "CLASS:" in text:  # OR-Bench's response checker
        verdict = _pick(text, ("direct_answer", "direct_refusal", "indirect_refusal"))
        return "or_bench", f"The response is brief. [[{verdict}]]"
    if "Annotators preferred A" in text:  # mixmerge's Hummer labelling prompt
        return "hummer", f"A is better on one dimension. [[{_pick(text, HUMMER_LABELS)}]]"
    return None


class JudgeServer:
    """`with JudgeServer() as server:` serves on 127.0.0.1; `server.base_url` ends in /v1."""

    def __init__(self, refuse_marker: str | None = None) -> None:
        """`refuse_marker`: prompts containing it get a reply with no verdict (a judge's safety
        refusal), as real API judges give on some toxic items."""
        self.requests: Counter[str] = Counter()
        self.unknown: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # name fixed by http.server
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = body.get("messages") or []
                answer = reply_for(messages)
                refused = refuse_marker is not None and any(
                    refuse_marker in str(m.get("content") or "") for m in messages
                )
                if answer is not None and refused:
                    answer = (answer[0], "I'm sorry, but I can't help with evaluating this.")
                if answer is None:
                    outer.unknown.append(json.dumps(body)[:300])
                    self._send(400, {"error": {"message": "unknown judge prompt", "type": "test"}})
                    return
                kind, content = answer
                outer.requests[kind] += 1
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{outer.requests.total()}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "judge"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
