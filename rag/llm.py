"""Talking to any OpenAI-compatible endpoint (hosted, or the local llama.cpp server).

The openai client does the retrying (exponential backoff on 429, 5xx and
connection errors) and the timeouts; this module turns its exceptions into
one-line messages a user can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import openai
from openai import OpenAI

from rag.endpoints import Endpoint, EndpointRefused, GuardedTransport, choose_endpoint, resolve_public
from rag.settings import Settings


class LLMError(RuntimeError):
    """The LLM endpoint failed in a way the user must fix or wait out (one line)."""


@dataclass
class ChatModel:
    """A chat model at an endpoint; `label` is what answers report as their generator."""

    client: OpenAI
    model: str
    label: str
    max_tokens: int
    temperature: float

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
        http_client: httpx2.Client | None = None,
    ) -> "ChatModel":
        """A client for `base_url`; redirects are never followed (a 3xx is an error), so a
        request and its key only ever go to the URL given here."""
        client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed",
            timeout=timeout_s, max_retries=max_retries,
            http_client=http_client or openai.DefaultHttpxClient(follow_redirects=False),
        )  # fmt: skip
        return cls(client, model, label, max_tokens, temperature)

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, **options) -> "ChatModel":
        """A client for a chosen endpoint; a custom one goes through the address guard and
        carries only its own key."""
        http_client = None
        if endpoint.custom:
            url = httpx2.URL(endpoint.base_url)
            # Refuse a private target at once with a clear message (no retries); the
            # transport checks again, per request, on the addresses it connects to.
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

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text as it is generated.

        Failures before the first token are retried by the client; a connection
        that breaks mid-answer cannot be retried (text was already shown), so it
        too becomes a one-line LLMError.
        """
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True,
                max_tokens=max_tokens or self.max_tokens, temperature=self.temperature,
            )  # fmt: skip
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.APIError as exc:
            raise LLMError(describe_error(exc, str(self.client.base_url), self.model)) from None
        except httpx2.HTTPError as exc:
            raise LLMError(
                f"LLM endpoint {self.client.base_url} broke off the answer: {exc}"[:300]
            ) from None

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        return "".join(self.stream(messages, max_tokens))


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
        return f"LLM endpoint {base_url} timed out"
    if isinstance(exc.__cause__, EndpointRefused):
        return str(exc.__cause__)
    if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
        target = exc.response.headers.get("location", "elsewhere")
        return f"LLM endpoint {base_url} redirected to {target}; redirects are not followed"[:300]
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach LLM endpoint {base_url} (is it running? check OPENAI_BASE_URL)"
    if isinstance(exc, openai.AuthenticationError):
        return f"LLM endpoint {base_url} rejected the API key (check OPENAI_API_KEY)"
    if isinstance(exc, openai.NotFoundError):
        return f"model '{model}' not found at {base_url} (check RAG_OPENAI_MODEL)"
    if isinstance(exc, openai.RateLimitError):
        return f"LLM endpoint {base_url} is rate limiting; retries exhausted"
    if isinstance(exc, openai.APIStatusError):
        return f"LLM endpoint {base_url} answered HTTP {exc.status_code}: {exc.message}"[:300]
    return f"LLM endpoint {base_url} failed: {exc}"[:300]
