"""A local stand-in for the Hugging Face hub's HTTP API, serving the repos of a mirror directory.

A test double, used only by tests: `mixmerge fetch` runs against it with HF_ENDPOINT pointing
here, so the download goes through huggingface_hub's real machinery (`repo_info`, the recursive
`list_repo_tree`, HEAD + GET on `resolve/<revision>/<file>` per file). It answers the endpoints
that machinery calls, with the headers it reads (X-Repo-Commit, ETag, Content-Length), for the
repos under DIR/{models,datasets}/<owner>/<name> at the commit the mirror's manifest records.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

_API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+))?/?$")
_RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class FakeHub:
    """`with FakeHub(mirror_dir) as hub:` serves on 127.0.0.1; `hub.endpoint` is HF_ENDPOINT."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest = json.loads((self.root / "mirror.json").read_text())["artifacts"]
        self.requests: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # name fixed by http.server
                outer._handle(self, body=True)

            def do_HEAD(self) -> None:  # name fixed by http.server
                outer._handle(self, body=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _repo(self, kind: str, repo_id: str, revision: str) -> tuple[Path, str] | None:
        record = self.manifest.get(f"{kind}:{repo_id}")
        folder = self.root / f"{kind}s" / repo_id
        if record is None or not folder.is_dir():
            return None
        if revision not in ("main", record["commit"]):
            return None
        return folder, record["commit"]

    def _handle(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(request.path).path)
        if match := _API.match(path):
            kind = match.group(1)[:-1]
            found = self._repo(kind, match.group(2), match.group(4) or "main")
            if found is None:
                return self._send(request, 404, {"error": "Repository not found"}, body)
            folder, commit = found
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            self.requests[match.group(3) or "info"] += 1
            if match.group(3) == "tree":
                tree = [
                    {
                        "type": "file",
                        "path": str(p.relative_to(folder)),
                        "size": p.stat().st_size,
                        "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                    }
                    for p in files
                ]
                return self._send(request, 200, tree, body)
            info = {
                "id": match.group(2),
                "sha": commit,
                "siblings": [{"rfilename": str(p.relative_to(folder))} for p in files],
            }
            return self._send(request, 200, info, body)
        if match := _RESOLVE.match(path):
            kind = "dataset" if match.group(1) else "model"
            found = self._repo(kind, match.group(2), match.group(3))
            file = found[0] / match.group(4) if found else None
            if file is None or not file.is_file():
                return self._send(request, 404, {"error": "Entry not found"}, body)
            self.requests["resolve"] += 1
            data = file.read_bytes()
            request.send_response(200)
            request.send_header("Content-Length", str(len(data)))
            request.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            request.send_header("X-Repo-Commit", found[1])
            request.end_headers()
            if body:
                request.wfile.write(data)
            return None
        return self._send(request, 404, {"error": f"no such endpoint {path}"}, body)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, obj: Any, body: bool) -> None:
        data = json.dumps(obj).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if status == 404:
            request.send_header(
                "X-Error-Code", "RepoNotFound" if "Repository" in str(obj) else "EntryNotFound"
            )
        request.end_headers()
        if body:
            request.wfile.write(data)
