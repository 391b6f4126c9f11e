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

    def __init__(self, root: Path, gated: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.gated = set(gated)  # repo ids answered as the hub answers a gated repo without access
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

    def _repo(self, kind: str, repo_id: str, revision: str) -> tuple[Path, str] | str:
        """(folder, commit), or the hub's X-Error-Code for why not."""
        record = self.manifest.get(f"{kind}:{repo_id}")
        folder = self.root / f"{kind}s" / repo_id
        if record is None or not folder.is_dir():
            return "RepoNotFound"
        if repo_id in self.gated:
            return "GatedRepo"
        if revision not in ("main", record["commit"]):
            return "RevisionNotFound"
        return folder, record["commit"]

    def _handle(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(request.path).path)
        if match := _API.match(path):
            kind = match.group(1)[:-1]
            found = self._repo(kind, match.group(2), match.group(4) or "main")
            if isinstance(found, str):
                return self._send(request, 403 if found == "GatedRepo" else 404, found, body)
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
            if isinstance(found, str):
                return self._send(request, 403 if found == "GatedRepo" else 404, found, body)
            file = found[0] / match.group(4)
            if not file.is_file():
                return self._send(request, 404, "EntryNotFound", body)
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
        return self._send(request, 404, "EntryNotFound", body)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, obj: Any, body: bool) -> None:
        """A JSON reply; an error (a str: the hub's X-Error-Code) carries that header."""
        data = json.dumps({"error": obj} if isinstance(obj, str) else obj).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if isinstance(obj, str):
            request.send_header("X-Error-Code", obj)
        request.end_headers()
        if body:
            request.wfile.write(data)
