"""The HTTP API beside the UI: ask, retrieve, ingest and stats for scripts and other tools.

Served by the same server as the Gradio app, under `/api` (OpenAPI schema at
`/api/openapi.json`, an interactive page at `/api/docs`, both without any
CDN), and the MCP endpoint at `/mcp` (see ui/mcp.py). When the UI has logins,
so does the API: every request carries HTTP Basic credentials of one of the
same users. Endpoints call the library exactly as the CLI and the UI do.
"""

# No `from __future__ import annotations`: FastAPI must see the local `User` dependency type.

import secrets
import shutil
import threading
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, HTTPException, UploadFile
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.routing import Mount

from rag.answer import Answerer, AnswerResult
from rag.conversations import ANONYMOUS
from rag.export import export_text
from rag.filters import RetrievalFilters, parse_year_range
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.retrieve import retrieve, sources_json
from rag.settings import Settings
from ui.auth import Users
from ui.corpus import check_upload

API_PATH = "/api"
MAX_TOP_K = 50


class Filters(BaseModel):
    """Optional metadata filters, as the CLI's --year/--author/--category/--source."""

    year: str | None = Field(default=None, description="2023, 2023-2025, 2023- or -2025")
    author: str | None = None
    category: str | None = Field(default=None, description="e.g. cs.CL")
    source: str | None = Field(default=None, description="substring of the ingested file's path")

    def build(self) -> RetrievalFilters | None:
        try:
            low, high = parse_year_range(self.year) if self.year else (None, None)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        filters = RetrievalFilters(low, high, self.author, self.category, self.source)
        return None if filters.is_empty() else filters


class RetrieveRequest(Filters):
    query: str = Field(min_length=1, max_length=2000)
    k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, description="papers to return")


class Turn(BaseModel):
    question: str
    answer: str


class AskRequest(Filters):
    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, description="earlier turns, oldest first")
    k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, description="papers handed to the answer")
    llm: Literal["auto", "extractive", "local", "openai"] | None = Field(
        default=None, description="answer generator (endpoint and key are the server's)"
    )
    format: Literal["markdown", "bibtex", "ris", "csl-json"] | None = Field(
        default=None,
        description="return the answer as Markdown with references, or its cited papers as "
        "BibTeX / RIS / CSL-JSON (text), instead of the AnswerResult JSON",
    )
    style: str | None = Field(default=None, description="CSL style of Markdown references")


class Stats(BaseModel):
    papers: int
    chunks: int
    index: str
    embedder: str


class IngestResult(BaseModel):
    added: int
    duplicates: int
    total_papers: int
    problems: list[str]
    enriched: int = 0  # papers already stored whose blank metadata the upload filled in


def basic_auth(users: Users):
    """A dependency returning the caller's user name (ANONYMOUS without logins), else 401."""
    scheme = HTTPBasic(auto_error=False, description="the UI's user:password logins")

    def check(credentials: Annotated[HTTPBasicCredentials | None, Depends(scheme)]) -> str:
        if not users:
            return ANONYMOUS
        if credentials is not None:
            for user, password in users:
                same_user = secrets.compare_digest(credentials.username.encode(), user.encode())
                same_password = secrets.compare_digest(credentials.password.encode(), password.encode())
                if same_user and same_password:
                    return user
        raise HTTPException(401, "login required", headers={"WWW-Authenticate": "Basic"})

    return check


def build_api(
    settings: Settings, index: PaperIndex, users: Users, slots: threading.Semaphore
) -> FastAPI:
    """The /api app. `slots` bounds the answers computed at once (shared with the MCP tools:
    requests here do not pass through the UI's queue)."""
    api = FastAPIOffline(
        title="Paper QA API",
        version="1",
        description="Cited answers over the indexed papers. With logins configured, use HTTP "
        "Basic auth with a UI login. The MCP endpoint for AI assistants is `/mcp`.",
    )
    User = Annotated[str, Depends(basic_auth(users))]

    @api.get("/stats", response_model=Stats, summary="Papers and chunks in the index")
    def stats(user: User) -> Stats:
        return Stats(
            papers=index.paper_count(), chunks=index.chunk_count(), index=index.location,
            embedder=index.embedder_label,
        )  # fmt: skip

    @api.post("/retrieve", summary="Rank papers for a query (hybrid dense + BM25)")
    def retrieve_papers(request: RetrieveRequest, user: User) -> list[dict]:
        sources = retrieve(index, request.query, request.k or settings.top_k, request.build())
        return sources_json(sources)

    @api.post(
        "/ask", response_model=AnswerResult, summary="Answer a question with citations",
        responses={200: {"content": {"text/plain": {}}, "description": "AnswerResult JSON, or "
                         "the export text when `format` is given"}},
    )  # fmt: skip
    def ask(request: AskRequest, user: User):
        update: dict = {"top_k": request.k or settings.top_k}
        if request.llm:
            update["llm"] = request.llm
        answerer = Answerer(index, settings.model_copy(update=update))
        history = [(turn.question, turn.answer) for turn in request.history]
        with slots:
            result = answerer.ask(request.question, history, request.build())
        if request.format is None:
            return result
        try:
            text = export_text([result], request.format, index, request.style or settings.export_style)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return PlainTextResponse(text)

    Uploads = Annotated[list[UploadFile], File(description="PDF, BibTeX, RIS, CSL-JSON, JSONL, "
                                                "CSV or daily-papers files")]  # fmt: skip

    @api.post("/ingest", response_model=IngestResult, summary="Add papers from uploaded files")
    def ingest(files: Uploads, user: User) -> IngestResult:
        uploads = settings.index / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        problems, accepted = [], []
        with tempfile.TemporaryDirectory(prefix="rag-api-") as scratch:
            for upload in files:
                name = Path(upload.filename or "upload").name
                staged = Path(scratch) / name
                with open(staged, "wb") as out:
                    shutil.copyfileobj(upload.file, out)
                problem = check_upload(staged, settings.ui_max_upload_mb)
                if problem:
                    problems.append(problem)
                    continue
                shutil.copyfile(staged, uploads / name)
                accepted.append(uploads / name)
        report = ingest_paths(index, accepted) if accepted else None
        if report is not None:
            problems += [p.replace(str(uploads) + "/", "") for p in report.problems()]
        return IngestResult(
            added=report.added if report else 0, duplicates=report.duplicates if report else 0,
            total_papers=index.paper_count(), problems=problems,
            enriched=report.enriched if report else 0,
        )  # fmt: skip

    return api


def server_extras(settings: Settings, index: PaperIndex, users: Users) -> dict:
    """Keyword arguments for Gradio's FastAPI app (`launch(app_kwargs=...)`): the HTTP API
    at /api, the MCP endpoint at /mcp, and the lifespan that runs MCP sessions."""
    from ui.mcp import build_mcp, mcp_route

    slots = threading.BoundedSemaphore(settings.ui_concurrency)
    mcp = build_mcp(settings, index, slots)
    route = mcp_route(mcp, settings, users)  # first: the session manager exists once the app does

    @asynccontextmanager
    async def lifespan(app):
        async with mcp.session_manager.run():
            yield

    return {
        "routes": [Mount(API_PATH, app=build_api(settings, index, users, slots)), route],
        "lifespan": lifespan,
    }
