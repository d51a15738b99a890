"""A tiny OpenAI-compatible embeddings server on 127.0.0.1 serving the bundled model's vectors.

POST /v1/embeddings answers {"data": [{"index", "embedding"}], "model"} like the real
API (vectors deliberately left unnormalised, as some servers send them), after
first returning the scripted HTTP error statuses. Every request is recorded.

`rendezvous=N` proves clients embed in parallel: requests are held until requests
with N different API keys are in flight at once (once only, at most RENDEZVOUS_WAIT_S);
`max_parallel_keys` is the most different keys ever seen in flight together.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rag.embedder import resolve_model_path

RENDEZVOUS_WAIT_S = 60.0


class StubEmbeddings:
    def __init__(self, failures: list[int] | None = None, scale: float = 3.0, rendezvous: int = 0):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(resolve_model_path("bundled")), device="cpu")
        self.failures = list(failures or [])
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.rendezvous = rendezvous
        self.max_parallel_keys = 0
        self._in_flight: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._encoding = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                if stub.failures:
                    self._send(stub.failures.pop(0), {"error": {"message": "stub failure"}})
                    return
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                key = self.headers.get("Authorization", "")
                stub._enter(key)
                try:
                    with stub._encoding:
                        vectors = stub.model.encode(texts, normalize_embeddings=True) * scale
                finally:
                    stub._leave(key)
                data = [
                    {"object": "embedding", "index": i, "embedding": vector.tolist()}
                    for i, vector in enumerate(vectors)
                ]
                self._send(200, {"object": "list", "data": data[::-1], "model": body["model"],
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})  # fmt: skip

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _enter(self, key: str) -> None:
        """Count the request in flight; hold it until the rendezvous is met (bounded)."""
        with self._changed:
            self._in_flight[key] += 1
            self.max_parallel_keys = max(self.max_parallel_keys, len(self._in_flight))
            self._changed.notify_all()
            met = self._changed.wait_for(
                lambda: self.max_parallel_keys >= self.rendezvous, timeout=RENDEZVOUS_WAIT_S
            )
            if not met:  # clients are serialised: stop holding requests, the test will fail
                self.rendezvous = 0
                self._changed.notify_all()

    def _leave(self, key: str) -> None:
        with self._changed:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]

    def __enter__(self) -> "StubEmbeddings":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
