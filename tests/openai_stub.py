"""A tiny OpenAI-compatible chat server on 127.0.0.1 for fault injection in tests.

It answers POST /v1/chat/completions (streamed as server-sent events, like the
real API) from a script: a queue of HTTP error statuses to return first, then a
queue of stream faults (see FAULTS), then `reply(messages) -> str` for every
successful call. Every request and its headers are recorded. `delay_s` makes
every answer wait first (a slow endpoint), `word_delay_s` trickles its words
(a slow generator); waits end at once when the stub closes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {
    "close-mid": "half the reply, then the connection closes (no Content-Length, no [DONE])",
    "chunked-cut": "chunked transfer: half the reply, then the connection closes mid-body",
    "malformed-json": "a data line that is not JSON",
    "malformed-json-mid": "half the reply, then a data line that is not JSON",
    "empty": "200 with an empty event stream",
    "invalid": "200 with an HTML page instead of an event stream",
    "error-event": "an error object inside the stream",
    "hang": "no response at all until the stub closes",
    "stall-mid": "half the reply, then silence until the stub closes",
}


class StubLLM:
    def __init__(
        self, reply: Callable[[list[dict]], str], failures: list[int] | None = None,
        redirect_to: str | None = None, faults: list[str] | None = None, delay_s: float = 0.0,
        word_delay_s: float = 0.0,
    ):  # fmt: skip
        self.reply = reply
        self.failures = list(failures or [])
        self.redirect_to = redirect_to  # answer every request with a 307 to this URL
        self.faults = list(faults or [])
        assert set(self.faults) <= set(FAULTS), self.faults
        self.delay_s = delay_s
        self.word_delay_s = word_delay_s  # pause between streamed words
        self.closing = threading.Event()
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []  # every request's headers, keys lower-cased
        self.disconnects = 0  # streams whose client hung up before the end
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                if stub.delay_s:
                    stub.closing.wait(stub.delay_s)
                text = stub.reply(body["messages"])
                if stub.faults:
                    self._fault(stub.faults.pop(0), text)
                    return
                try:
                    if stub.word_delay_s:
                        self._trickle(stub.events(text))
                    else:
                        self._send(200, "text/event-stream", stub.events(text))
                except (BrokenPipeError, ConnectionResetError):
                    stub.disconnects += 1

            def _trickle(self, data: bytes) -> None:
                """Send the events one at a time, word_delay_s apart (a slow generator)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for event in data.split(b"\n\n")[:-1]:
                    self.wfile.write(event + b"\n\n")
                    self.wfile.flush()
                    if stub.closing.wait(stub.word_delay_s):
                        return

            def _fault(self, fault: str, text: str) -> None:
                half = stub.events(text, finish=False).split(b"\n\n")
                half = b"\n\n".join(half[: max(1, len(half) // 2)]) + b"\n\n"
                self.close_connection = True
                if fault == "hang":
                    stub.closing.wait()
                elif fault == "close-mid":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(half)
                elif fault == "chunked-cut":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(half):x}\r\n".encode() + half + b"\r\n")
                    self.wfile.write(b"400\r\npartial")  # promised 1024 bytes, sent 7
                elif fault == "stall-mid":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(half)
                    self.wfile.flush()
                    stub.closing.wait()
                elif fault == "malformed-json":
                    self._send(200, "text/event-stream", b"data: {not json\n\n")
                elif fault == "malformed-json-mid":
                    self._send(200, "text/event-stream", half + b"data: {not json\n\n")
                elif fault == "empty":
                    self._send(200, "text/event-stream", b"")
                elif fault == "invalid":
                    self._send(200, "text/html", b"<html><body>It works!</body></html>")
                elif fault == "error-event":
                    error = {"error": {"message": "model overloaded", "type": "server_error"}}
                    self._send(200, "text/event-stream", f"data: {json.dumps(error)}\n\n".encode())

            def _send(self, status: int, kind: str, data: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def events(text: str, finish: bool = True) -> bytes:
        """The reply as streamed chunks, one per word, then (like the real API) a chunk
        with finish_reason "stop" and [DONE]."""
        words = text.split(" ")
        pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
        chunks = [{"content": piece} for piece in pieces] + ([None] if finish else [])
        lines = []
        for delta in chunks:
            chunk = {
                "id": "stub", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                "choices": [{"index": 0, "delta": delta or {},
                             "finish_reason": None if delta else "stop"}],
            }  # fmt: skip
            lines.append(f"data: {json.dumps(chunk)}\n\n")
        if finish:
            lines.append("data: [DONE]\n\n")
        return "".join(lines).encode()

    def __enter__(self) -> "StubLLM":
        self.thread.start()
        return self

    def authorizations(self) -> list[str]:
        """The Authorization header of every request received ('' when absent)."""
        return [headers.get("authorization", "") for headers in self.headers]

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
