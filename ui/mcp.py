"""MCP server: the paper search and cited answers as tools for AI assistants.

Tools: `search` (rank papers for a query), `ask` (a cited answer with its
sources) and `stats`. Served over Streamable HTTP at `/mcp` on the chat UI's
server (HTTP Basic auth with the UI's logins when it has them), or over stdio
by `rag mcp` for assistants that start their tools as subprocesses. Built on
the `mcp` SDK's MCPServer; the tools call the library like the CLI does.
"""

from __future__ import annotations

import base64
import secrets
import threading
from contextlib import nullcontext
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.answer import Answerer
from rag.index import PaperIndex
from rag.retrieve import retrieve, sources_json
from rag.settings import Settings
from ui.auth import Users

MAX_TOP_K = 20


def build_mcp(settings: Settings, index: PaperIndex, slots: threading.Semaphore | None = None):
    """The MCP server; `slots` bounds the answers computed at once (see ui.api)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(
        "paper-qa",
        instructions="Search an indexed corpus of research papers and get answers that cite "
        "them. Cite papers by their id; every answer lists its sources.",
    )

    @server.tool(description="Rank the indexed papers for a query; returns id, title, score, "
                 "year, authors, url and a snippet of each.")  # fmt: skip
    def search(query: str, k: int = 5) -> list[dict[str, Any]]:
        return sources_json(retrieve(index, query, max(1, min(k, MAX_TOP_K))))

    @server.tool(description="Answer a question from the indexed papers with [n] citations; "
                 "returns the answer, whether it abstained, and the numbered sources.")  # fmt: skip
    def ask(question: str, k: int = 5) -> dict[str, Any]:
        answerer = Answerer(index, settings.model_copy(update={"top_k": max(1, min(k, MAX_TOP_K))}))
        with slots or nullcontext():
            result = answerer.ask(question)
        return {
            "answer": result.answer,
            "abstained": result.abstained,
            "sources": [
                {"n": s.n, "id": s.paper_id, "title": s.title, "url": s.url, "year": s.year,
                 "authors": s.authors, "cited": s.cited}
                for s in result.sources
            ],  # fmt: skip
            "answered_by": result.llm,
        }

    @server.tool(description="Number of papers and chunks in the index.")
    def stats() -> dict[str, Any]:
        return {"papers": index.paper_count(), "chunks": index.chunk_count()}

    return server


class BasicAuthGuard:
    """ASGI wrapper: requests without the Basic credentials of a configured user get 401."""

    def __init__(self, app: ASGIApp, users: Users):
        self.app = app
        self.users = users

    def allowed(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return any(
            secrets.compare_digest(user.encode(), name.encode())
            & secrets.compare_digest(password.encode(), secret.encode())
            for name, secret in self.users
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.users and scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if not self.allowed(headers.get(b"authorization", b"").decode("latin-1")):
                response = PlainTextResponse(
                    "login required", status_code=401, headers={"WWW-Authenticate": "Basic"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def mcp_route(server, settings: Settings, users: Users) -> Route:
    """The Streamable HTTP endpoint as one route (`/mcp`) for the UI's server. The SDK's
    DNS-rebinding protection is on when the UI binds a loopback address."""
    app = server.streamable_http_app(streamable_http_path="/mcp", host=settings.host)
    (route,) = [route for route in app.routes if getattr(route, "path", "") == "/mcp"]
    return Route("/mcp", endpoint=BasicAuthGuard(route.app, users), methods=["GET", "POST", "DELETE"])
