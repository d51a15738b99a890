"""ChatModel against a stub OpenAI-compatible server: streaming, retries, errors."""

from __future__ import annotations

import socket

import pytest
from openai_stub import StubLLM

from rag.llm import ChatModel, LLMError

MESSAGES = [{"role": "user", "content": "hello"}]


def connect(base_url: str, max_retries: int = 2) -> ChatModel:
    return ChatModel.connect(
        base_url, None, "stub-model", "openai:stub-model",
        timeout_s=5, max_retries=max_retries, max_tokens=32, temperature=0.0,
    )  # fmt: skip


def test_stream_yields_deltas_in_order():
    with StubLLM(lambda messages: "Sparse codes halve memory [1].") as stub:
        deltas = list(connect(stub.base_url).stream(MESSAGES))
    assert len(deltas) > 1
    assert "".join(deltas) == "Sparse codes halve memory [1]."
    assert stub.requests[0]["stream"] is True and stub.requests[0]["max_tokens"] == 32


@pytest.mark.parametrize("status", [429, 503])
def test_client_retries_after_429_and_5xx(status):
    with StubLLM(lambda messages: "fine [1].", failures=[status]) as stub:
        text = connect(stub.base_url).complete(MESSAGES)
    assert text == "fine [1]."
    assert len(stub.requests) == 2  # one failure, one retry


def test_retries_exhausted_give_one_line_error():
    with StubLLM(lambda messages: "never", failures=[429, 429, 429]) as stub:
        with pytest.raises(LLMError) as error:
            connect(stub.base_url, max_retries=1).complete(MESSAGES)
    assert len(stub.requests) == 2
    assert "rate limiting" in str(error.value) and "\n" not in str(error.value)


def test_down_endpoint_gives_one_line_error():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMError) as error:
        connect(f"http://127.0.0.1:{port}/v1", max_retries=1).complete(MESSAGES)
    message = str(error.value)
    assert message.startswith(f"cannot reach LLM endpoint http://127.0.0.1:{port}/v1")
    assert "\n" not in message


def test_max_tokens_override_is_sent():
    with StubLLM(lambda messages: "short") as stub:
        connect(stub.base_url).complete(MESSAGES, max_tokens=7)
    assert stub.requests[0]["max_tokens"] == 7
