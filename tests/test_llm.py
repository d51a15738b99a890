"""ChatModel against a stub OpenAI-compatible server: streaming, retries, errors."""

from __future__ import annotations

import random
import socket
import time

import pytest
from openai_stub import StubLLM

from rag.llm import ChatModel, LLMError, PartialAnswer, backoff_delay

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


# --- faults told truthfully (issue 12 item 7) ------------------------------------------------

REPLY = "Sparse codes halve the memory of transformer language models [1]."


def faulty(fault: str, **connect_options) -> tuple[list[str], Exception, StubLLM]:
    """Stream REPLY through one fault; return the deltas received and the error raised."""
    deltas: list[str] = []
    with StubLLM(lambda messages: REPLY, faults=[fault]) as stub:
        model = ChatModel.connect(
            stub.base_url, None, "stub-model", "openai:stub-model", max_retries=0,
            max_tokens=32, temperature=0.0, **{"timeout_s": 5, **connect_options},
        )  # fmt: skip
        with pytest.raises(LLMError) as error:
            for delta in model.stream(MESSAGES):
                deltas.append(delta)
    return deltas, error.value, stub


@pytest.mark.parametrize("fault", ["close-mid", "chunked-cut", "malformed-json-mid"])
def test_a_stream_cut_mid_answer_is_partial_not_complete(fault):
    deltas, error, stub = faulty(fault)
    assert deltas and "".join(deltas) != REPLY  # some text arrived, not all of it
    assert isinstance(error, PartialAnswer)
    message = str(error)
    assert message.startswith(f"LLM endpoint {stub.base_url}") and "incomplete" in message
    assert "\n" not in message and "is it running" not in message


def test_chunked_cut_names_the_closed_connection():
    _, error, _ = faulty("chunked-cut")
    assert "broke off the answer (connection closed mid-response" in str(error)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("malformed-json", "sent malformed JSON in its stream"),
        ("empty", "returned no answer (an empty or invalid response: text/event-stream)"),
        ("invalid", "returned no answer (an empty or invalid response: text/html)"),
        ("error-event", "model overloaded"),
    ],
)  # fmt: skip
def test_bad_responses_name_the_endpoint_and_the_cause(fault, cause):
    deltas, error, stub = faulty(fault)
    assert deltas == [] and not isinstance(error, PartialAnswer)
    assert stub.base_url in str(error) and cause in str(error) and "\n" not in str(error)


def test_a_hung_endpoint_is_given_up_at_the_first_token_deadline():
    started = time.monotonic()
    deltas, error, stub = faulty("hang", timeout_s=30, first_token_s=1.0)
    elapsed = time.monotonic() - started
    assert deltas == [] and elapsed < 5
    assert f"LLM endpoint {stub.base_url}" in str(error) and "timed out" in str(error)


def test_a_stream_that_stalls_mid_answer_is_cut_and_marked_partial():
    deltas, error, _ = faulty("stall-mid", timeout_s=1.0)
    assert deltas and isinstance(error, PartialAnswer)
    assert "no data for 1 s" in str(error)


def test_overall_deadline_cuts_a_slow_stream():
    """A stream still going at the answer deadline is cut there and marked partial."""

    class SlowWords:
        def __init__(self, model):
            self.create = model.client.chat.completions.create

        def __call__(self, **kwargs):
            stream = self.create(**kwargs)
            original = stream._iterator

            def slow():
                for chunk in original:
                    time.sleep(0.2)
                    yield chunk

            stream._iterator = slow()
            return stream

    with StubLLM(lambda m: REPLY) as stub:
        model = ChatModel.connect(
            stub.base_url, None, "m", "openai:m", timeout_s=5, max_retries=0, max_tokens=32,
            temperature=0.0, deadline_s=0.5,
        )  # fmt: skip
        model.client.chat.completions.create = SlowWords(model)
        deltas = []
        with pytest.raises(PartialAnswer, match="did not finish within the answer deadline"):
            for delta in model.stream(MESSAGES):
                deltas.append(delta)
    assert 1 <= len(deltas) < len(REPLY.split())


def test_retries_stop_at_the_first_token_deadline():
    with StubLLM(lambda messages: "never", failures=[503] * 50) as stub:
        model = ChatModel.connect(
            stub.base_url, None, "m", "openai:m", timeout_s=5, max_retries=50, max_tokens=8,
            temperature=0.0, first_token_s=1.5,
        )  # fmt: skip
        started = time.monotonic()
        with pytest.raises(LLMError, match="answered HTTP 503") as error:
            model.complete(MESSAGES)
    assert time.monotonic() - started < 2.5
    assert 2 <= len(stub.requests) < 50 and "attempts in" in str(error.value)


def test_a_cut_before_any_text_is_retried():
    with StubLLM(lambda messages: REPLY, faults=["close-mid"]) as stub:
        stub.reply = lambda messages: REPLY
        model = connect(stub.base_url, max_retries=1)
        # the first attempt's cut comes after some text: not retried (shown already)
        with pytest.raises(PartialAnswer):
            model.complete(MESSAGES)
    with StubLLM(lambda messages: REPLY, failures=[502]) as stub:
        assert connect(stub.base_url, max_retries=1).complete(MESSAGES) == REPLY
        assert len(stub.requests) == 2


def test_backoff_has_jitter_and_honours_retry_after():
    rng = random.Random(7)
    delays = {round(backoff_delay(2, None, rng), 3) for _ in range(20)}
    assert len(delays) > 10 and all(1.0 <= d <= 2.0 for d in delays)
    assert backoff_delay(0, 3.0) == 3.0
    assert backoff_delay(30, None, rng) <= 8.0


def test_closing_the_generator_hangs_up_on_the_endpoint():
    with StubLLM(lambda m: "word " * 200, word_delay_s=0.05) as stub:
        generator = connect(stub.base_url).stream(MESSAGES)
        next(generator)
        generator.close()  # what a Stop button / a departed user does
        deadline = time.monotonic() + 5
        while stub.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stub.disconnects == 1
