"""A tiny OpenAI-compatible chat server on 127.0.0.1 for fault injection in tests.

It answers POST /v1/chat/completions (streamed as server-sent events, like the
real API) from a script: a queue of HTTP error statuses to return first, then
`reply(messages) -> str` for every successful call. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubLLM:
    def __init__(
        self, reply: Callable[[list[dict]], str], failures: list[int] | None = None,
        redirect_to: str | None = None,
    ):  # fmt: skip
        self.reply = reply
        self.failures = list(failures or [])
        self.redirect_to = redirect_to  # answer every request with a 307 to this URL
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []  # every request's headers, keys lower-cased
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                stub.headers.append({name.lower(): value for name, value in self.headers.items()})
                if stub.redirect_to:
                    self._send(307, "text/plain", b"moved", {"Location": stub.redirect_to})
                    return
                if stub.failures:
                    self._send(stub.failures.pop(0), "application/json",
                               json.dumps({"error": {"message": "stub failure"}}).encode(),
                               {"retry-after-ms": "10"})  # fmt: skip
                    return
                self._send(200, "text/event-stream", stub.events(stub.reply(body["messages"])))

            def _send(self, status: int, kind: str, data: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def events(text: str) -> bytes:
        """The reply as streamed chunks, one per word, then [DONE]."""
        words = text.split(" ")
        pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
        lines = []
        for piece in pieces:
            chunk = {
                "id": "stub", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }  # fmt: skip
            lines.append(f"data: {json.dumps(chunk)}\n\n")
        lines.append("data: [DONE]\n\n")
        return "".join(lines).encode()

    def __enter__(self) -> "StubLLM":
        self.thread.start()
        return self

    def authorizations(self) -> list[str]:
        """The Authorization header of every request received ('' when absent)."""
        return [headers.get("authorization", "") for headers in self.headers]

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
