"""Settings-tab values → per-session Settings and retrieval filters."""

from __future__ import annotations

import pytest

from rag.endpoints import EndpointRefused
from rag.filters import RetrievalFilters
from tests.conftest import make_settings
from ui.options import session_options


def test_blank_controls_keep_server_settings_and_apply_no_filters(tmp_path):
    base = make_settings(tmp_path, openai_model="base-model")
    options = session_options(7, "extractive", "", "", "", 0, None, "", "  ", False)
    settings = options.settings(base)
    assert (settings.top_k, settings.llm, settings.openai_model) == (7, "extractive", "base-model")
    assert settings.openai_base_url is None and settings.openai_api_key is None
    assert options.filters() is None
    assert base.top_k == make_settings(tmp_path).top_k  # the shared object is untouched


def test_filled_controls_choose_a_custom_endpoint_and_build_filters(tmp_path):
    base = make_settings(tmp_path, allow_custom_endpoints=True, openai_api_key="sk-server")
    options = session_options(
        3,
        "openai",
        " m1 ",
        "http://127.0.0.1:9/v1",
        "sk-x",
        2019.0,
        2024,
        " Hinton ",
        "cs.CL",
        True,
    )
    settings = options.settings(base)
    assert settings.openai_model == "m1" and settings.llm_custom_url == "http://127.0.0.1:9/v1"
    assert settings.llm_custom_key.get_secret_value() == "sk-x"
    # the server's own endpoint and key are untouched: nothing pairs them with the typed URL
    assert settings.openai_base_url is None
    assert settings.openai_api_key.get_secret_value() == "sk-server"
    assert options.show_prompt
    assert options.filters() == RetrievalFilters(
        year_min=2019, year_max=2024, author="Hinton", category="cs.CL"
    )


def test_typed_endpoint_is_refused_when_the_operator_has_not_allowed_it(tmp_path):
    options = session_options(3, "openai", "", "http://10.0.0.5/v1", "sk-x", 0, 0, "", "", False)
    with pytest.raises(EndpointRefused, match="custom LLM endpoints are disabled"):
        options.settings(make_settings(tmp_path))
