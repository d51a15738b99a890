"""Shared fixtures: real Chroma indexes in temp dirs, built from the bundled corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag  # noqa: F401  (offline environment first)
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.settings import BUNDLED_CORPUS, Settings, load_settings


def make_settings(tmp: Path, **overrides) -> Settings:
    """Settings isolated from the user's config, index and server state."""
    return load_settings(index=tmp / "index", state_dir=tmp / "state", **overrides)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    for name in ("RAG_CONFIG", "RAG_INDEX", "OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_LLM"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.getbasetemp() / "home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="session")
def seed_index(seed_settings) -> PaperIndex:
    """The bundled corpus, indexed once per test session (read-only for tests)."""
    index = PaperIndex(seed_settings)
    ingest_paths(index, [BUNDLED_CORPUS])
    return index


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def empty_index(settings) -> PaperIndex:
    return PaperIndex(settings)
