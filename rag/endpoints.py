"""Which LLM endpoint a request goes to, with which key, and whether it may go there at all.

The server's API keys belong to the endpoints the operator configured: the
default one (`openai_base_url` + `openai_api_key`) and any named ones in
`llm_endpoints` (each names the environment variable holding its key). A
session of the chat UI may pick among those by name, and a model among the
endpoint's listed ones; it never changes their URLs. A URL typed by a user is
a *custom* endpoint: accepted only when the operator enables it, only with
the user's own key (the server's keys are never attached), only over
http(s), and only to public addresses unless the operator allows private
ones. The address check runs when each request is sent, against the
addresses the connection then actually uses (`GuardedTransport` pins them),
so a name that resolves to a public address when checked and to 127.0.0.1
a moment later cannot slip through; redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
from pydantic import BaseModel, Field, SecretStr

DEFAULT_ENDPOINT = "default"
"""Name of the endpoint given by openai_base_url / openai_api_key / openai_model."""

OPENAI_API = "https://api.openai.com/v1"

# Headers a custom endpoint may receive: the request itself and the user's own
# Authorization. Anything else the client adds from the server's environment
# (OPENAI_ORG_ID, OPENAI_PROJECT_ID, OPENAI_CUSTOM_HEADERS) stays home.
_CUSTOM_HEADERS = {"host", "content-type", "content-length", "accept", "accept-encoding",
                   "user-agent", "connection", "authorization"}  # fmt: skip


class EndpointRefused(ValueError):
    """A request may not go to this endpoint (one line saying why and what to do)."""


class LLMEndpointConfig(BaseModel):
    """One operator-configured OpenAI-compatible endpoint (a `[[llm_endpoints]]` table)."""

    name: str = Field(description="What the UI shows and `llm_endpoint` selects.")
    base_url: str = Field(description="Base URL, e.g. https://api.example.com/v1.")
    models: list[str] = Field(
        default_factory=list, description="Models the UI may choose at this endpoint (first = default)."
    )
    api_key_env: str = Field(
        default="", description="Environment variable holding this endpoint's key ('' = none)."
    )


@dataclass(frozen=True)
class Endpoint:
    """Where one chat request goes: URL, key and model, and whether its address is guarded."""

    name: str
    base_url: str
    api_key: str | None
    model: str
    custom: bool = False  # typed by a user: own key only, address guard unless allow_private
    allow_private: bool = False

    @property
    def label(self) -> str:
        named = self.name not in (DEFAULT_ENDPOINT, "custom")
        return f"{self.name}:{self.model}" if named else f"openai:{self.model}"


def operator_endpoints(settings) -> dict[str, LLMEndpointConfig]:
    """The endpoints a session may choose by name: the default one first, then llm_endpoints."""
    default = LLMEndpointConfig(
        name=DEFAULT_ENDPOINT, base_url=settings.openai_base_url or OPENAI_API,
        models=list(dict.fromkeys([settings.openai_model, *settings.openai_models])),
    )  # fmt: skip
    return {DEFAULT_ENDPOINT: default, **{e.name: e for e in settings.llm_endpoints}}


def choose_endpoint(settings, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint `settings` select, with the key that may be sent to it.

    A custom URL (`llm_custom_url`) gets only `llm_custom_key`; a named endpoint
    gets the key the operator configured for it. Raises EndpointRefused.
    """
    if settings.llm_custom_url:
        if not settings.allow_custom_endpoints:
            raise EndpointRefused(
                "custom LLM endpoints are disabled on this server: pick one of the configured "
                f"endpoints ({', '.join(operator_endpoints(settings))})"
            )
        url = check_url(settings.llm_custom_url)
        key = settings.llm_custom_key.get_secret_value().strip() if settings.llm_custom_key else ""
        if not key:
            raise EndpointRefused(f"a custom endpoint ({url}) needs your own API key")
        return Endpoint("custom", url, key, settings.openai_model, custom=True,
                        allow_private=settings.allow_private_endpoints)  # fmt: skip
    endpoints = operator_endpoints(settings)
    config = endpoints.get(settings.llm_endpoint)
    if config is None:
        raise EndpointRefused(
            f"unknown LLM endpoint '{settings.llm_endpoint}' (configured: {', '.join(endpoints)})"
        )
    if config.name == DEFAULT_ENDPOINT:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return Endpoint(DEFAULT_ENDPOINT, settings.openai_base_url or OPENAI_API, key,
                        settings.openai_model)  # fmt: skip
    key = environ.get(config.api_key_env) if config.api_key_env else None
    model = settings.openai_model
    if config.models and model not in config.models:
        model = config.models[0]
    return Endpoint(config.name, config.base_url, key, model)


def session_choice(settings, endpoint: str, model: str, api_key: str) -> dict:
    """Settings updates for what a UI session picked (endpoint name or URL, model, own key).

    Never touches openai_base_url / openai_api_key, so no code path can pair
    the server's key with a URL a user typed. Raises EndpointRefused.
    """
    endpoint, model, api_key = endpoint.strip(), model.strip(), api_key.strip()
    if "://" in endpoint or "/" in endpoint:
        if not settings.allow_custom_endpoints:
            raise EndpointRefused(
                "custom LLM endpoints are disabled on this server: pick one of the configured "
                f"endpoints ({', '.join(operator_endpoints(settings))})"
            )
        url = check_url(endpoint)
        if not api_key:
            raise EndpointRefused(f"a custom endpoint ({url}) needs your own API key")
        if not model:
            raise EndpointRefused("a custom endpoint needs a model name")
        return {"llm_custom_url": url, "llm_custom_key": SecretStr(api_key),
                "openai_model": model}  # fmt: skip
    endpoints = operator_endpoints(settings)
    config = endpoints.get(endpoint or DEFAULT_ENDPOINT)
    if config is None:
        raise EndpointRefused(
            f"unknown LLM endpoint '{endpoint}' (configured: {', '.join(endpoints)})"
        )
    if model and config.models and model not in config.models:
        raise EndpointRefused(
            f"model '{model}' is not offered at endpoint '{config.name}' "
            f"(choose one of: {', '.join(config.models)})"
        )
    chosen = model or (config.models[0] if config.models else settings.openai_model)
    return {"llm_endpoint": config.name, "llm_custom_url": None, "llm_custom_key": None,
            "openai_model": chosen}  # fmt: skip


def check_url(url: str) -> str:
    """A custom endpoint URL must be http(s) with a host; returns it without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRefused(f"endpoint URL must be http:// or https:// with a host, not {url!r}")
    if parts.username or parts.password:
        raise EndpointRefused("endpoint URL must not carry a user name or password")
    return url.strip().rstrip("/")


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (IPv4 or IPv6).

    Loopback, private, link-local, shared (CGNAT), multicast, reserved and
    unspecified addresses are not, nor IPv6 forms that embed one of those
    (IPv4-mapped, 6to4, NAT64, Teredo).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_multicast or not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(is_public(str(inner)) for inner in embedded if inner is not None)
    return True


def resolve_public(host: str, port: int, allow_private: bool) -> list[str]:
    """Every address `host` resolves to, refusing the lot if any one is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointRefused(f"cannot resolve LLM endpoint host {host} ({exc.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        blocked = [address for address in addresses if not is_public(address)]
        if blocked:
            raise EndpointRefused(
                f"LLM endpoint host {host} resolves to a non-public address ({blocked[0]}); "
                "custom endpoints must be on the public internet on this server"
            )
    return addresses


class GuardedTransport(httpx2.BaseTransport):
    """Sends a custom endpoint's requests only to checked addresses, with only safe headers.

    Each request resolves the host, refuses non-public addresses, and connects
    to the checked address itself (TLS still verifies the host name), so DNS
    cannot change the answer between the check and the connection.
    """

    def __init__(self, api_key: str, allow_private: bool, inner: httpx2.BaseTransport | None = None):
        self.authorization = f"Bearer {api_key}"
        self.allow_private = allow_private
        self.inner = inner or httpx2.HTTPTransport(trust_env=False)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EndpointRefused(f"endpoint URL must be http(s), not {url.scheme}")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = resolve_public(url.host, port, self.allow_private)[0]
        for name in list(request.headers):
            if name.lower() not in _CUSTOM_HEADERS or (
                name.lower() == "authorization" and request.headers[name] != self.authorization
            ):
                del request.headers[name]
        request.headers["Authorization"] = self.authorization
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        request.url = url.copy_with(host=address)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
