"""The launched app (real HTTP on 127.0.0.1): deployment guards that live in launch()."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

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
