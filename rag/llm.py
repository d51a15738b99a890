"""Talking to any OpenAI-compatible endpoint (hosted, or the local llama.cpp server).

Faults are told as they are: every error names the endpoint and the cause in
one line, and an answer whose stream stops before the model said it was done
(connection closed, chunked body cut, overall deadline) raises `PartialAnswer`
instead of passing the truncated text off as complete.

Retries (exponential backoff with jitter, honouring Retry-After) happen only
before the first token, where nothing has been shown yet; they and the wait
for the first token share one deadline (`llm_first_token_s`), and the whole
call has another (`llm_answer_deadline_s`), so a hung endpoint costs a bounded,
known time instead of timeout x attempts.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import openai
from openai import OpenAI

from rag.endpoints import Endpoint, GuardedTransport, choose_endpoint, resolve_public
from rag.settings import Settings

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0


class LLMError(RuntimeError):
    """The LLM endpoint failed in a way the user must fix or wait out (one line)."""


class PartialAnswer(LLMError):
    """The answer stopped before the model finished: the text already streamed is incomplete."""


class _Retryable(Exception):
    """A failure before the first token that another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random = random) -> float:
    """Seconds to wait before retry `attempt` (0-based): the server's Retry-After when it
    gave one, else exponential backoff with jitter (50-100 % of the step) so clients that
    failed together do not retry together."""
    if retry_after is not None and retry_after >= 0:
        return retry_after
    step = min(BACKOFF_START_S * 2**attempt, BACKOFF_MAX_S)
    return step * (0.5 + 0.5 * rng.random())


@dataclass
class ChatModel:
    """A chat model at an endpoint; `label` is what answers report as their generator."""

    client: OpenAI
    model: str
    label: str
    max_tokens: int
    temperature: float
    max_retries: int = 0
    timeout_s: float = 120.0  # one read may wait this long (capped by the deadlines)
    first_token_s: float = 120.0  # first token, retries included, within this
    deadline_s: float = 300.0  # the whole call within this

    @classmethod
    def connect(
        cls,
        base_url: str | None,
        api_key: str | None,
        model: str,
        label: str,
        *,
        timeout_s: float,
        max_retries: int,
        max_tokens: int,
        temperature: float,
        first_token_s: float | None = None,
        deadline_s: float | None = None,
        http_client: httpx2.Client | None = None,
    ) -> "ChatModel":
        """A client for `base_url`; redirects are never followed (a 3xx is an error), so a
        request and its key only ever go to the URL given here. Retries are ours (before
        the first token only), not the openai client's."""
        client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0,
            http_client=http_client or openai.DefaultHttpxClient(follow_redirects=False),
        )  # fmt: skip
        first = first_token_s or timeout_s * (max_retries + 1)
        return cls(client, model, label, max_tokens, temperature, max_retries, timeout_s,
                   first, deadline_s or max(first, timeout_s) * 2)  # fmt: skip

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, **options) -> "ChatModel":
        """A client for a chosen endpoint; a custom one goes through the address guard and
        carries only its own key."""
        http_client = None
        if endpoint.custom:
            url = httpx2.URL(endpoint.base_url)
            # Refuse a private target at once with a clear message; the transport
            # checks again, per request, on the addresses it connects to.
            resolve_public(url.host, url.port or (443 if url.scheme == "https" else 80),
                           endpoint.allow_private)  # fmt: skip
            http_client = openai.DefaultHttpxClient(
                transport=GuardedTransport(endpoint.api_key or "", endpoint.allow_private),
                follow_redirects=False,
            )  # fmt: skip
        return cls.connect(
            endpoint.base_url, endpoint.api_key, endpoint.model, endpoint.label,
            http_client=http_client, **options,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text as it is generated.

        Raises LLMError (one line naming the endpoint and the cause) when no
        answer comes, and PartialAnswer when one stops before its end. Closing
        the generator (the user left or pressed Stop) closes the connection.
        """
        started = time.monotonic()
        first_by, end_by = started + self.first_token_s, started + self.deadline_s
        attempt = 0
        while True:
            try:
                yield from self._attempt(messages, max_tokens, first_by, end_by)
                return
            except _Retryable as exc:  # raised only before any text was yielded
                delay = backoff_delay(attempt, exc.retry_after)
                left = first_by - time.monotonic()
                if attempt >= self.max_retries or delay >= left:
                    tried = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise LLMError(f"{exc} ({tried} in {time.monotonic() - started:.0f} s)") from None
                time.sleep(delay)
                attempt += 1

    def _attempt(
        self, messages: list[dict[str, str]], max_tokens: int | None, first_by: float,
        end_by: float,
    ) -> Iterator[str]:  # fmt: skip
        """One request. Failures worth retrying before the first token raise _Retryable."""
        where = f"LLM endpoint {self.base_url}"
        wait = max(0.1, min(self.timeout_s, first_by - time.monotonic()))
        timeout = httpx2.Timeout(wait, connect=min(wait, 10.0))
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True,
                max_tokens=max_tokens or self.max_tokens, temperature=self.temperature,
                timeout=timeout,
            )  # fmt: skip
        except openai.APIStatusError as exc:
            if exc.status_code in RETRY_STATUSES:
                raise _Retryable(describe_error(exc, self.base_url, self.model),
                                 retry_after(exc.response)) from None  # fmt: skip
            raise LLMError(describe_error(exc, self.base_url, self.model)) from None
        except openai.APIError as exc:  # connection refused, timeout before the headers
            raise _Retryable(describe_error(exc, self.base_url, self.model)) from None
        done = _DoneWatcher(stream)
        finished, produced = False, False
        try:
            for chunk in stream:
                choice = chunk.choices[0] if chunk.choices else None
                if choice and choice.delta and choice.delta.content:
                    produced = True
                    yield choice.delta.content
                finished = finished or bool(choice and choice.finish_reason)
                if not finished and time.monotonic() > end_by:
                    raise PartialAnswer(f"{where} did not finish within the answer deadline "
                                        f"({self.deadline_s:.0f} s); the answer is incomplete")
        except (openai.APIError, httpx2.HTTPError) as exc:
            cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
            reason = _cause(cause or exc, self.timeout_s)
            if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
                reason = f"it reported an error: {exc.message}"[:160]  # an error event
            if produced:
                raise PartialAnswer(f"{where} broke off the answer ({reason}); "
                                    "the answer is incomplete") from None  # fmt: skip
            raise _Retryable(f"{where} broke off the response before any text ({reason})") from None
        except json.JSONDecodeError as exc:
            message = f"{where} sent malformed JSON in its stream ({exc.msg} at char {exc.pos})"
            raise (PartialAnswer(f"{message}; the answer is incomplete") if produced
                   else LLMError(message)) from None  # fmt: skip
        finally:
            stream.close()  # also when the consumer stops early: the server sees the hang-up
        if finished or done.seen:
            return
        if produced:
            raise PartialAnswer(f"{where} closed the stream before the answer was finished "
                                "(no finish_reason, no [DONE]); the answer is incomplete")  # fmt: skip
        kind = stream.response.headers.get("content-type", "no content type")
        raise LLMError(f"{where} returned no answer (an empty or invalid response: {kind})")

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        return "".join(self.stream(messages, max_tokens))


class _DoneWatcher:
    """Notes whether a stream ended with the `[DONE]` event (which the openai client
    consumes silently): with a finish_reason, the only sign an answer ended on purpose
    rather than because the connection closed."""

    def __init__(self, stream: openai.Stream):
        self.seen = False
        self.decoder = stream._decoder
        stream._decoder = self  # read lazily, on the first iteration

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator:
        for event in self.decoder.iter_bytes(iterator):
            self.seen = self.seen or event.data.startswith("[DONE]")
            yield event


def retry_after(response: httpx2.Response) -> float | None:
    """The server's requested wait (retry-after-ms or retry-after seconds), if any."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(response.headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None


def _cause(exc: BaseException, timeout_s: float) -> str:
    """A short reason for a transport failure, e.g. 'no data for 30 s'."""
    if isinstance(exc, (httpx2.TimeoutException, openai.APITimeoutError)):
        return f"no data for {timeout_s:.0f} s"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return f"connection closed mid-response: {exc}"[:160]
    return f"{type(exc).__name__}: {exc}"[:160]


def resolve_mode(settings: Settings) -> str:
    """'auto' means: a configured endpoint if there is one, else extractive."""
    if settings.llm != "auto":
        return settings.llm
    configured = settings.openai_base_url or settings.openai_api_key or settings.llm_custom_url
    return "openai" if configured or settings.llm_endpoint != "default" else "extractive"


def connect_chat_model(settings: Settings, mode: str, max_tokens: int | None = None) -> ChatModel:
    """The configured generator for `mode` ('local' starts or reuses the llama.cpp server)."""
    common = dict(
        timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries,
        max_tokens=max_tokens or settings.max_answer_tokens, temperature=settings.temperature,
        first_token_s=settings.llm_first_token_s, deadline_s=settings.llm_answer_deadline_s,
    )  # fmt: skip
    if mode == "local":
        from rag.local_llm import ensure_local_server

        server = ensure_local_server(settings)
        return ChatModel.connect(
            server.base_url, None, server.model, f"local:{server.model}", **common
        )
    if mode != "openai":
        raise LLMError(f"no LLM configured (llm={settings.llm}): use --llm local or openai")
    return ChatModel.for_endpoint(choose_endpoint(settings), **common)  # or EndpointRefused


def describe_error(exc: openai.APIError, base_url: str, model: str) -> str:
    """One line saying what went wrong with the endpoint and what to check."""
    if isinstance(exc, openai.APITimeoutError):
        return f"LLM endpoint {base_url} timed out (no response)"
    if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
        target = exc.response.headers.get("location", "elsewhere")
        return f"LLM endpoint {base_url} redirected to {target}; redirects are not followed"[:300]
    if isinstance(exc, openai.APIConnectionError):
        cause = f": {_cause(exc.__cause__, 0)}" if exc.__cause__ else ""
        return f"cannot reach LLM endpoint {base_url} (is it running? check the URL){cause}"[:300]
    if isinstance(exc, openai.AuthenticationError):
        return f"LLM endpoint {base_url} rejected the API key (HTTP 401; check the key)"
    if isinstance(exc, openai.NotFoundError):
        return f"model '{model}' not found at {base_url} (HTTP 404; check the model name and URL)"
    if isinstance(exc, openai.RateLimitError):
        return f"LLM endpoint {base_url} is rate limiting (HTTP 429)"
    if isinstance(exc, openai.APIStatusError):
        return f"LLM endpoint {base_url} answered HTTP {exc.status_code}: {exc.message}"[:300]
    return f"LLM endpoint {base_url} failed: {type(exc).__name__}: {exc}"[:300]
