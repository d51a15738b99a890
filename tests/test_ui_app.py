"""The launched app (real HTTP on 127.0.0.1): deployment guards that live in launch()."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from openai_stub import StubLLM
from pydantic import SecretStr

from ui.app import launch


@pytest.fixture
def serve(settings, empty_index) -> Iterator:
    """serve(**settings_overrides, users=...) → base URL of a running app (closed after the test)."""
    apps = []

    def start(users=None, **overrides) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        own = settings.model_copy(update={"port": port, **overrides})
        apps.append(launch(own, users=users, ingest_bundled=False, block=False, index=empty_index))
        return f"http://127.0.0.1:{port}"

    start.apps = apps  # the launched apps, for a test that looks inside one
    yield start
    for app in apps:
        app.close()


def test_uploads_over_the_size_limit_are_refused_by_the_server(serve):
    with httpx.Client(base_url=serve(ui_max_upload_mb=1)) as client:
        small = client.post("/gradio_api/upload", files={"files": ("a.jsonl", b"{}\n" * 10)})
        big = client.post("/gradio_api/upload", files={"files": ("b.jsonl", b"x" * 1_500_000)})
    assert small.status_code == 200
    assert big.status_code == 413


def test_app_requires_login_when_users_are_given(serve):
    with httpx.Client(base_url=serve(users=[("alice", "s3cret")])) as client:
        assert client.get("/config").status_code == 401
        wrong = client.post("/login", data={"username": "alice", "password": "wrong"})
        assert wrong.status_code == 400
        right = client.post("/login", data={"username": "alice", "password": "s3cret"})
        assert right.status_code == 200
        assert client.get("/config").status_code == 200


def test_app_without_users_is_open_on_loopback(serve):
    with httpx.Client(base_url=serve()) as client:
        assert client.get("/config").status_code == 200


def test_the_queues_run_statistics_stay_bounded(serve, monkeypatch):
    """Gradio re-tabulates its last 10,000 events after every event unless told otherwise
    (~11 % of the server's GIL time under load); the app bounds that table and its refresh."""
    from ui.app import QUEUE_STATS_EVENTS, QUEUE_STATS_EVERY

    monkeypatch.delenv("GRADIO_ANALYTICS_MAX_EVENTS", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    serve()
    queue = serve.apps[-1]._queue
    assert queue.ANALYTICS_MAX_EVENTS == QUEUE_STATS_EVENTS < 10_000
    assert queue.ANAYLTICS_CACHE_FREQUENCY == QUEUE_STATS_EVERY > 1


# --- nobody stalls everyone: the real app over HTTP (issue 12 item 4) --------------------------

QUESTION = "How can quantile regression models be aggregated?"


def ask(url: str, llm: str) -> tuple[float, list]:
    """One user's question through the app's own API (a fresh session); (seconds, outputs)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.monotonic()
    client.predict(QUESTION, api_name="/lambda")  # what submitting the textbox does first
    outputs = client.predict([], 5, llm, None, "default", "", None, None, "", "", False,
                             api_name="/respond_event")  # fmt: skip
    return time.monotonic() - started, outputs


@pytest.fixture
def serve_seed(seed_settings, seed_index) -> Iterator:
    apps = []

    def start(**overrides) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        own = seed_settings.model_copy(update={"port": port, **overrides})
        apps.append(launch(own, ingest_bundled=False, block=False, index=seed_index))
        return f"http://127.0.0.1:{port}"

    yield start
    for app in apps:
        app.close()


def test_a_slow_endpoint_does_not_delay_another_users_extractive_answer(serve_seed):
    with StubLLM(lambda m: "Averaging [1].", delay_s=120) as stub:
        url = serve_seed(
            openai_base_url=stub.base_url, openai_api_key=SecretStr("k"), llm_max_retries=0,
            llm_first_token_s=120.0,
        )  # fmt: skip
        ask(url, "extractive")  # warm: the embedder loads on the first question
        alone = min(ask(url, "extractive")[0] for _ in range(2))
        slow_users = [threading.Thread(target=ask, args=(url, "openai"), daemon=True)
                      for _ in range(4)]  # fmt: skip
        for user in slow_users:
            user.start()
        deadline = time.monotonic() + 30
        while len(stub.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(stub.requests) == 2  # both LLM slots held by the hung endpoint
        during, outputs = ask(url, "extractive")
        assert "answered by `extractive`" in outputs[4]
        assert during - alone < 2.0, (alone, during)
        stub.closing.set()
        for user in slow_users:
            user.join(timeout=60)


def test_stop_cancels_the_llm_call(serve_seed):
    from gradio_client import Client

    with StubLLM(lambda m: "word " * 400, word_delay_s=0.05) as stub:
        url = serve_seed(openai_base_url=stub.base_url, openai_api_key=SecretStr("k"),
                         llm_max_retries=0)  # fmt: skip
        client = Client(url, verbose=False)
        client.predict(QUESTION, api_name="/lambda")
        job = client.submit([], 5, "openai", None, "default", "", None, None, "", "", False,
                            api_name="/respond_event")  # fmt: skip
        deadline = time.monotonic() + 60
        while not stub.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        job.cancel()  # what the Stop button (cancels=) and a closed tab do on the server
        while not stub.disconnects and time.monotonic() < deadline:
            time.sleep(0.1)
    assert stub.requests and stub.disconnects == 1


def test_the_apps_api_cannot_send_the_server_key_to_a_typed_url(serve_seed):
    """An attacker skips the widgets and posts any endpoint value to the answer API."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with StubLLM(lambda m: "op") as operator, StubLLM(lambda m: "leak") as attacker:
        url = serve_seed(openai_base_url=operator.base_url, openai_api_key=SecretStr("sk-server"),
                         llm_max_retries=0)  # fmt: skip
        client = Client(url, verbose=False)
        for endpoint, key in [(attacker.base_url, ""), (attacker.base_url, "sk-mine"),
                              (operator.base_url.replace("/v1", "/x/v1"), "")]:  # fmt: skip
            client.predict(QUESTION, api_name="/lambda")
            try:
                outputs = client.predict([], 5, "openai", "stub", endpoint, key, None, None, "",
                                         "", False, api_name="/respond_event")  # fmt: skip
            except AppError as refused:  # Gradio's own check: not one of the offered choices
                assert "not in the list of choices: ['default']" in str(refused)
            else:
                assert "custom LLM endpoints are disabled" in str(outputs[0][-1]["content"])
    assert attacker.requests == [] and operator.requests == []


def test_answers_do_not_grow_a_sessions_component_registry(seed_settings, seed_index):
    """Each answer streams status lines before its result. Had those lines `gr.skip()`ped
    the sources panel (and prompt, copy text), Gradio 6 would register a new copy of each
    of them, whole panel HTML included, in the session for every answer (~0.2 MB an
    answer under load). The session's registry stays the size it had after one answer."""
    from gradio_client import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    own = seed_settings.model_copy(update={"port": port})
    app = launch(own, ingest_bundled=False, block=False, index=seed_index)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False)

        def registry() -> tuple[int, int]:
            client.predict(QUESTION, api_name="/lambda")
            outputs = client.predict([], 5, "extractive", None, "default", "", None, None, "",
                                     "", False, api_name="/respond_event")  # fmt: skip
            assert "answered by `extractive`" in str(outputs[4])
            state = app.server_app.state_holder.session_data[client.session_hash]
            return len(state.blocks_config.blocks), len(state.config_values)

        after_one = registry()
        for _ in range(3):
            assert registry() == after_one
    finally:
        app.close()
