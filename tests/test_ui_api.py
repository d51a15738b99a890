"""The HTTP API and the MCP endpoint on the running app's server (real HTTP on 127.0.0.1, logins on)."""

from __future__ import annotations

import asyncio
import json

import bibtexparser
import httpx
import httpx2
import pytest

from tests.conftest import make_settings
from tests.test_export import FOLLOW_UP, LIBRARY, QUESTION
from tests.test_ui_browser import free_port

USERS = [("alice", "alice-pw")]
AUTH = ("alice", "alice-pw")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from rag.index import PaperIndex
    from rag.ingest import ingest_paths
    from ui.app import launch

    root = tmp_path_factory.mktemp("api")
    (root / "library.bib").write_text(LIBRARY, encoding="utf-8")
    settings = make_settings(root, llm="extractive", host="127.0.0.1", port=free_port())
    index = PaperIndex(settings)
    ingest_paths(index, [root / "library.bib"])
    app = launch(settings, users=USERS, ingest_bundled=False, block=False, index=index)
    yield f"http://127.0.0.1:{settings.port}"
    app.close()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


def test_every_endpoint_needs_a_login(client):
    for method, path in (("GET", "/api/stats"), ("POST", "/api/ask"), ("POST", "/api/retrieve"),
                         ("POST", "/api/ingest")):  # fmt: skip
        response = client.request(method, path, json={"question": "x", "query": "x"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Basic"
    assert client.get("/api/stats", auth=("alice", "wrong")).status_code == 401
    assert client.get("/api/stats", auth=AUTH).json()["papers"] == 3


def test_ask_answers_with_citations_and_exports(client):
    response = client.post("/api/ask", json={"question": QUESTION, "k": 3}, auth=AUTH)
    assert response.status_code == 200
    result = response.json()
    assert result["question"] == QUESTION and not result["abstained"]
    assert [c["paper_id"] for c in result["citations"]] == ["10.5194/tc-15-2021"]
    follow = client.post(
        "/api/ask", auth=AUTH,
        json={"question": FOLLOW_UP, "history": [{"question": QUESTION, "answer": result["answer"]}]},
    ).json()  # fmt: skip
    assert "2303.04567" in [c["paper_id"] for c in follow["citations"]]
    bib = client.post("/api/ask", json={"question": QUESTION, "format": "bibtex"}, auth=AUTH)
    assert bib.headers["content-type"].startswith("text/plain")
    assert bibtexparser.parse_string(bib.text).entries[0]["doi"] == "10.5194/tc-15-2021"
    bad = client.post("/api/ask", json={"question": QUESTION, "format": "markdown", "style": "nope"},
                      auth=AUTH)  # fmt: skip
    assert bad.status_code == 422 and "unknown citation style" in bad.json()["detail"]
    assert client.post("/api/ask", json={"question": ""}, auth=AUTH).status_code == 422


def test_retrieve_with_filters(client):
    rows = client.post("/api/retrieve", json={"query": "coral bleaching", "k": 2}, auth=AUTH).json()
    assert rows[0]["id"] == "2303.04567" and len(rows) == 2
    dated = client.post("/api/retrieve", json={"query": "coral bleaching", "year": "-2000"},
                        auth=AUTH).json()  # fmt: skip
    assert [row["id"] for row in dated] == [row["id"] for row in dated if row["id"] != "2303.04567"]
    bad = client.post("/api/retrieve", json={"query": "x", "year": "soon"}, auth=AUTH)
    assert bad.status_code == 422


def test_ingest_uploads_and_refuses_bad_files(client):
    ris = ("TY  - JOUR\nAU  - Sailor, Sam\nTI  - Tidal Energy Forecasting with Harbour Sensors\n"
           "AB  - Harbour sensors forecast tidal energy output a day ahead.\nPY  - 2022\nER  - \n")  # fmt: skip
    response = client.post(
        "/api/ingest", auth=AUTH,
        files=[("files", ("tides.ris", ris.encode())), ("files", ("slides.pptx", b"PK\x03\x04"))],
    )  # fmt: skip
    report = response.json()
    assert response.status_code == 200 and report["added"] == 1 and report["total_papers"] == 4
    assert report["problems"] == ["slides.pptx: unsupported type (use .txt, .jsonl, .jsonl.gz, "
                                  ".ndjson, .json, .csv, .tsv, .pdf, .bib, .ris)"]  # fmt: skip
    rows = client.post("/api/retrieve", json={"query": "tidal energy harbour"}, auth=AUTH).json()
    assert rows[0]["title"] == "Tidal Energy Forecasting with Harbour Sensors"


def test_openapi_schema_and_offline_docs_page(client):
    schema = client.get("/api/openapi.json").json()
    assert {"/stats", "/ask", "/retrieve", "/ingest"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"
    page = client.get("/api/docs").text
    assert "cdn" not in page.lower() and "/api/static-offline-docs/swagger-ui-bundle.js" in page
    assert client.get("/api/static-offline-docs/swagger-ui-bundle.js").status_code == 200


async def mcp_session(server: str, auth: tuple[str, str] | None):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(auth=httpx2.BasicAuth(*auth) if auth else None)
    async with http, Client(streamable_http_client(f"{server}/mcp", http_client=http)) as client:
        tools = await client.list_tools()
        answer = await client.call_tool("ask", {"question": QUESTION, "k": 3})
        search = await client.call_tool("search", {"query": "honey bee navigation", "k": 1})
    return tools, answer, search


def test_mcp_client_lists_the_tools_and_calls_ask(server):
    tools, answer, search = asyncio.run(asyncio.wait_for(mcp_session(server, AUTH), 120))
    assert {tool.name for tool in tools.tools} == {"search", "ask", "stats"}
    payload = json.loads(answer.content[0].text)
    assert not answer.is_error and "radar interferometry" in payload["answer"].lower()
    assert [s["id"] for s in payload["sources"] if s["cited"]] == ["10.5194/tc-15-2021"]
    assert "Honey Bee Navigation" in search.content[0].text


def test_mcp_refuses_clients_without_a_login(server, client):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    assert client.post("/mcp", json=hello).status_code == 401
    with pytest.raises(BaseException) as failure:  # an ExceptionGroup from the SDK's task group
        asyncio.run(asyncio.wait_for(mcp_session(server, None), 60))
    assert "Server returned an error response" in repr(failure.value)  # the SDK's words for 401
