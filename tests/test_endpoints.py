"""The server's key only goes to the operator's endpoints; user endpoints are guarded.

Real HTTP against stub OpenAI-compatible servers on 127.0.0.1 that log every
Authorization header they receive.
"""

from __future__ import annotations

import socket

import pytest
from openai_stub import StubLLM
from pydantic import SecretStr

from rag import endpoints
from rag.endpoints import (
    EndpointRefused,
    LLMEndpointConfig,
    choose_endpoint,
    is_public,
    session_choice,
)
from rag.llm import LLMError, connect_chat_model
from tests.conftest import make_settings

SERVER_KEY = "sk-server-secret"
USER_KEY = "sk-user-own"
MESSAGES = [{"role": "user", "content": "hello"}]


def operator_settings(tmp_path, base_url: str, **overrides):
    return make_settings(
        tmp_path, llm="openai", openai_base_url=base_url, openai_api_key=SERVER_KEY,
        openai_model="stub-model", llm_max_retries=0, **overrides,
    )  # fmt: skip


def session(settings, endpoint: str, model: str = "", key: str = ""):
    return settings.model_copy(update=session_choice(settings, endpoint, model, key))


def ask(settings) -> str:
    return connect_chat_model(settings, "openai").complete(MESSAGES)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
     "::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::a00:1", "2001:0:4136:e378:8000:63bf:f5ff:fffe",
     "fe80::1%eth0"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert is_public(address)


def test_session_picks_named_endpoints_and_their_models_only(tmp_path):
    settings = make_settings(
        tmp_path, openai_base_url="https://llm.example/v1", openai_model="m0",
        openai_models=["m1"],
        llm_endpoints=[LLMEndpointConfig(name="other", base_url="https://other.example/v1",
                                         models=["o1", "o2"], api_key_env="OTHER_KEY")],
    )  # fmt: skip
    assert session_choice(settings, "default", "m1", "")["openai_model"] == "m1"
    assert session_choice(settings, "other", "", "")["openai_model"] == "o1"
    with pytest.raises(EndpointRefused, match="model 'gpt-5' is not offered"):
        session_choice(settings, "other", "gpt-5", "")
    with pytest.raises(EndpointRefused, match="unknown LLM endpoint 'nope'"):
        session_choice(settings, "nope", "", "")
    chosen = choose_endpoint(session(settings, "other", "o2"), environ={"OTHER_KEY": "k-other"})
    assert (chosen.base_url, chosen.api_key, chosen.model) == ("https://other.example/v1",
                                                              "k-other", "o2")  # fmt: skip


def test_typed_urls_are_refused_unless_the_operator_allows_them(tmp_path):
    settings = make_settings(tmp_path, openai_api_key=SERVER_KEY)
    with pytest.raises(EndpointRefused, match="custom LLM endpoints are disabled"):
        session_choice(settings, "https://evil.example/v1", "m", USER_KEY)
    allowed = settings.model_copy(update={"allow_custom_endpoints": True})
    with pytest.raises(EndpointRefused, match="needs your own API key"):
        session_choice(allowed, "https://evil.example/v1", "m", "")
    for bad in ("file:///etc/passwd", "gopher://x/", "ftp://h/v1", "https://u:p@h/v1"):
        with pytest.raises(EndpointRefused):
            session_choice(allowed, bad, "m", USER_KEY)
    update = session_choice(allowed, "https://evil.example/v1/", "m", USER_KEY)
    assert "openai_base_url" not in update and "openai_api_key" not in update
    chosen = choose_endpoint(allowed.model_copy(update=update))
    assert chosen.custom and chosen.api_key == USER_KEY and chosen.base_url.endswith("/v1")


def test_operator_endpoint_gets_the_server_key(tmp_path):
    with StubLLM(lambda messages: "fine [1].") as stub:
        settings = operator_settings(tmp_path, stub.base_url)
        assert ask(session(settings, "default")) == "fine [1]."
    assert stub.authorizations() == [f"Bearer {SERVER_KEY}"]


def test_user_endpoint_on_loopback_is_refused_before_any_request(tmp_path):
    with StubLLM(lambda messages: "leaked") as user_stub:
        settings = operator_settings(tmp_path, "https://llm.example/v1",
                                     allow_custom_endpoints=True)  # fmt: skip
        chosen = session(settings, user_stub.base_url, "m", USER_KEY)
        with pytest.raises(EndpointRefused, match="resolves to a non-public address"):
            ask(chosen)
    assert user_stub.requests == []


@pytest.mark.parametrize("variant", ["other-path", "other-port", "same-url"])
def test_server_key_never_reaches_a_user_typed_url(tmp_path, variant):
    """Even the operator's own host, typed by a user, gets only the user's key."""
    with StubLLM(lambda m: "op") as operator, StubLLM(lambda m: "user") as other:
        typed = {
            "other-path": operator.base_url.replace("/v1", "/proxy/v1"),
            "other-port": other.base_url,
            "same-url": operator.base_url,
        }[variant]
        settings = operator_settings(
            tmp_path, operator.base_url, allow_custom_endpoints=True, allow_private_endpoints=True
        )
        with pytest.raises(EndpointRefused, match="own API key"):
            session(settings, typed, "m", "")
        try:
            ask(session(settings, typed, "m", USER_KEY))
        except LLMError:
            pass  # the stub may 404 an unknown path; only what it received matters
    received = operator.authorizations() + other.authorizations()
    assert received and all(value == f"Bearer {USER_KEY}" for value in received)


def test_redirects_are_not_followed(tmp_path):
    with StubLLM(lambda m: "target") as target:
        with StubLLM(lambda m: "x", redirect_to=target.base_url + "/chat/completions") as hop:
            settings = operator_settings(tmp_path, hop.base_url)
            with pytest.raises(LLMError, match="redirected to .*redirects are not followed"):
                ask(settings)
            custom = session(
                settings.model_copy(update={"allow_custom_endpoints": True,
                                            "allow_private_endpoints": True}),
                hop.base_url, "m", USER_KEY,
            )  # fmt: skip
            with pytest.raises(LLMError, match="redirects are not followed"):
                ask(custom)
    assert target.requests == []
    assert hop.authorizations() == [f"Bearer {SERVER_KEY}", f"Bearer {USER_KEY}"]


def test_server_environment_headers_stay_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-secret")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer env-secret\nX-Api-Key: k")
    with StubLLM(lambda m: "ok") as stub:
        settings = operator_settings(tmp_path, "https://llm.example/v1",
                                     allow_custom_endpoints=True, allow_private_endpoints=True)
        assert ask(session(settings, stub.base_url, "m", USER_KEY)) == "ok"
    (headers,) = stub.headers
    assert headers["authorization"] == f"Bearer {USER_KEY}"
    assert "openai-organization" not in headers and "x-api-key" not in headers


def fake_dns(monkeypatch, answers: list[str]):
    """Resolve every name to answers[i] on the i-th lookup (the last one repeats)."""
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        address = answers[min(len(lookups), len(answers) - 1)]
        lookups.append(host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(endpoints.socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_dns_rebinding_to_loopback_is_caught_at_request_time(tmp_path, monkeypatch):
    with StubLLM(lambda m: "leaked") as stub:
        port = stub.base_url.split(":")[2].split("/")[0]
        lookups = fake_dns(monkeypatch, ["93.184.216.34", "127.0.0.1"])
        settings = operator_settings(tmp_path, "https://llm.example/v1",
                                     allow_custom_endpoints=True)  # fmt: skip
        chosen = session(settings, f"http://rebind.test:{port}/v1", "m", USER_KEY)
        with pytest.raises(EndpointRefused, match="non-public address \\(127.0.0.1\\)"):
            ask(chosen)
    assert len(lookups) >= 2 and stub.requests == []


def test_connection_goes_to_the_checked_address(tmp_path, monkeypatch):
    """The transport connects to the address it checked, keeping the typed host name."""
    with StubLLM(lambda m: "pinned") as stub:
        port = stub.base_url.split(":")[2].split("/")[0]
        fake_dns(monkeypatch, ["127.0.0.1"])
        settings = operator_settings(tmp_path, "https://llm.example/v1",
                                     allow_custom_endpoints=True, allow_private_endpoints=True)
        assert ask(session(settings, f"http://named.test:{port}/v1", "m", USER_KEY)) == "pinned"
    assert stub.headers[0]["host"] == f"named.test:{port}"


def test_cli_operator_settings_are_unchanged(tmp_path):
    """`--base-url` and OPENAI_API_KEY still pair up for the operator at the command line."""
    with StubLLM(lambda m: "cli") as stub:
        settings = operator_settings(tmp_path, stub.base_url)
        assert ask(settings) == "cli"
    assert stub.authorizations() == [f"Bearer {SERVER_KEY}"]
    assert choose_endpoint(settings).api_key == SERVER_KEY
    assert isinstance(settings.openai_api_key, SecretStr)
