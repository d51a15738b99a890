"""The `rag` command: ingest, stats, retrieve, ask, chat (and friends).

Every failure a user can cause or fix (bad file, missing index, endpoint down)
ends as one `error: ...` line on stderr and a non-zero exit, never a traceback.

Cold start: `rag --help` (and argument errors) must stay well under 0.5 s, so this
module imports only what builds the parser; settings (pydantic, httpx) and every
stage are imported by the command that needs them (docs/BENCHMARKS.md, "Cold start").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import rag  # noqa: F401  (pins offline environment before heavy imports)
from rag.export import EXPORT_FORMATS
from rag.papers import strip_controls

if TYPE_CHECKING:
    from rag.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def say(*parts: object, file=None) -> None:
    """print() for anything that may carry text from papers, file names or the index:
    control characters (ESC sequences) never reach the terminal."""
    print(*(strip_controls(str(part)) for part in parts), file=file or sys.stdout)


class UserError(Exception):
    """A problem to report as one line, without a traceback."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, help="index directory (env RAG_INDEX)")
    parser.add_argument("--config", type=Path, help="TOML settings file (env RAG_CONFIG)")


def _add_answer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-k", "--top-k", type=int, dest="top_k", help="papers to retrieve")
    parser.add_argument(
        "--llm", choices=["auto", "extractive", "local", "openai"], help="answer generator"
    )
    parser.add_argument("--model", dest="openai_model", help="model name at the endpoint")
    parser.add_argument("--base-url", dest="openai_base_url", help="OpenAI-compatible base URL")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--year", help="year or range: 2023, 2023-2025, 2023-, -2025")
    parser.add_argument("--author", help="only papers with this author (case-insensitive substring)")
    parser.add_argument("--category", help="only papers in this category, e.g. cs.CL")
    parser.add_argument("--source", help="only papers ingested from a file whose path contains this")


def _filters(args: argparse.Namespace):
    """The --year/--author/--category/--source flags as RetrievalFilters (None when unset)."""
    from rag.filters import RetrievalFilters, parse_year_range

    year_min, year_max = parse_year_range(args.year) if args.year is not None else (None, None)
    filters = RetrievalFilters(year_min, year_max, args.author, args.category, args.source)
    return None if filters.is_empty() else filters


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Cited question answering over research papers (offline)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add papers from files or directories")
    ingest.add_argument("paths", nargs="+", type=Path)
    _add_common(ingest)

    stats = commands.add_parser("stats", help="papers, chunks, index location, embedder")
    stats.add_argument("--json", action="store_true")
    _add_common(stats)

    check = commands.add_parser(
        "check", help="find papers without vectors, orphan chunks, BM25 drift, leftovers"
    )
    check.add_argument("--json", action="store_true")
    _add_common(check)

    repair = commands.add_parser("repair", help="fix what `rag check` finds (under the write lock)")
    _add_common(repair)

    retrieve = commands.add_parser("retrieve", help="rank papers for a query")
    retrieve.add_argument("query", nargs="?")
    retrieve.add_argument("-k", "--top-k", type=int, dest="top_k", default=None)
    retrieve.add_argument("--json", action="store_true")
    retrieve.add_argument("--queries", type=Path, help="BEIR queries.jsonl for batch mode")
    retrieve.add_argument("--run-out", type=Path, help="TREC run file to write (batch mode)")
    retrieve.add_argument("--run-tag", default="rag", help="tag column of the TREC run")
    _add_filters(retrieve)
    _add_common(retrieve)

    ask = commands.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question", nargs="?")
    ask.add_argument("--json", action="store_true")
    ask.add_argument(
        "--format", choices=EXPORT_FORMATS,
        help="print the answer as Markdown with references, or its cited papers as BibTeX/RIS/CSL-JSON",
    )  # fmt: skip
    ask.add_argument("--style", dest="export_style", help="CSL style of Markdown references (apa, ieee, …)")
    ask.add_argument("--questions", type=Path, help="JSONL of {id, question} for batch mode")
    ask.add_argument("--out", type=Path, help="answers JSONL to write (batch mode)")
    _add_answer_options(ask)
    _add_filters(ask)
    _add_common(ask)

    chat = commands.add_parser("chat", help="launch the chat UI")
    chat.add_argument("--host", help="bind address (default 127.0.0.1)")
    chat.add_argument("--port", type=int, help="port (default 7860)")
    chat.add_argument(
        "--auth", type=Path, metavar="FILE",
        help="user:password lines required to log in (env RAG_UI_USERS also works)",
    )  # fmt: skip
    chat.add_argument(
        "--no-auth", action="store_true",
        help="allow binding a non-loopback address without logins (trusted networks only)",
    )  # fmt: skip
    chat.add_argument(
        "--no-bundled-corpus", action="store_true",
        help="do not ingest the bundled corpus into an empty index",
    )  # fmt: skip
    _add_common(chat)

    evaluate = commands.add_parser("eval", help="score a gold or BEIR suite; writes a report")
    evaluate.add_argument("suite", type=Path, help="gold Q&A JSONL or BEIR directory")
    evaluate.add_argument("--out", type=Path, help="report directory (default eval-runs/<time>)")
    evaluate.add_argument("--compare", type=Path, help="a previous run's report directory")
    evaluate.add_argument("--retrieval-only", action="store_true", help="skip answering")
    _add_answer_options(evaluate)
    _add_common(evaluate)

    mcp = commands.add_parser("mcp", help="serve search and ask to AI assistants (MCP over stdio)")
    _add_common(mcp)

    local = commands.add_parser("local-llm", help="manage the bundled llama.cpp server")
    local.add_argument("action", choices=["start", "stop"])
    _add_common(local)
    return parser


def _settings(args: argparse.Namespace, **extra) -> Settings:
    from rag.settings import Settings, load_settings

    fields = set(Settings.model_fields)
    overrides = {key: value for key, value in vars(args).items() if key in fields}
    return load_settings(getattr(args, "config", None), **overrides, **extra)


def _open_index(settings: Settings):
    from rag.index import PaperIndex

    return PaperIndex(settings)


@contextmanager
def _ingest_progress() -> Iterator[Callable[[int, int], None]]:
    """A live tqdm bar (count, rate, ETA) on a terminal; otherwise (CI=true, a log file) a
    plain progress line at most every PROGRESS_LINE_S once papers are being written, and
    a last one at the end, so logs stay readable (a run that ends before its first line
    is due prints none: the summary says it all)."""
    from rag.ingest import ProgressReporter

    if sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("true", "1"):
        from tqdm import tqdm

        with tqdm(total=0, unit="paper", file=sys.stderr, dynamic_ncols=True) as bar:

            def draw(done: int, total: int, line: str) -> None:
                bar.total = total
                bar.update(done - bar.n)

            yield ProgressReporter(draw)
        return
    last = [time.monotonic(), False]  # when the last line was printed; printed any?

    def log(done: int, total: int, line: str) -> None:
        now = time.monotonic()
        due = 0 < done < total and now - last[0] >= PROGRESS_LINE_S
        if due or (done >= total and last[1]):
            last[:] = [now, True]
            print(f"  {line}", file=sys.stderr, flush=True)

    yield ProgressReporter(log)


PROGRESS_LINE_S = 10.0


def cmd_ingest(args: argparse.Namespace) -> int:
    from rag.ingest import ingest_paths

    index = _open_index(_settings(args))
    with _ingest_progress() as progress:
        report = ingest_paths(index, args.paths, progress=progress)
    say(report.summary())
    for line in report.notes:
        say(f"note: {line}", file=sys.stderr)
    for line in report.problems():
        say(f"error: {line}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_stats(args: argparse.Namespace) -> int:
    settings = _settings(args)
    index = _open_index(settings)
    stats = {
        "papers": index.paper_count(),
        "chunks": index.chunk_count(),
        "index": index.location,
        "embedder": index.embedder_label,
        "chunk_size": settings.chunk_size,
    }
    if args.json:
        print(json.dumps(stats))
    else:
        for key, value in stats.items():
            say(f"{key:>10}: {value}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when healthy, 1 with one line per problem."""
    from rag.health import check

    index = _open_index(_settings(args))
    problems = check(index)
    if args.json:
        print(json.dumps({
            "index": index.location, "healthy": not problems,
            "problems": [problem.as_json() for problem in problems],
        }))  # fmt: skip
    else:
        for problem in problems:
            say(problem.line())
        say(f"{index.location}: {'healthy' if not problems else f'{len(problems)} problem(s)'}")
    return EXIT_ERROR if problems else EXIT_OK


def cmd_repair(args: argparse.Namespace) -> int:
    """Check, fix, check again: exit 0 only when the index ends healthy."""
    from rag.health import check, repair

    index = _open_index(_settings(args))
    problems = check(index)
    if not problems:
        say(f"{index.location}: healthy, nothing to repair")
        return EXIT_OK
    for line in repair(index, problems):
        say(line)
    left = check(_open_index(_settings(args)))
    for problem in left:
        say(f"error: still {problem.line()}", file=sys.stderr)
    say(f"{index.location}: {'repaired' if not left else f'{len(left)} problem(s) left'}")
    return EXIT_ERROR if left else EXIT_OK


def cmd_retrieve(args: argparse.Namespace) -> int:
    from rag.retrieve import read_queries, retrieve, retrieve_batch, sources_json, trec_run_lines

    settings = _settings(args)
    filters = _filters(args)
    index = _open_index(settings)
    k = args.top_k or settings.top_k
    if args.queries:
        if not args.run_out:
            raise UserError("--queries needs --run-out RUN.txt")
        try:
            queries = read_queries(args.queries)
        except OSError as exc:
            raise UserError(f"{args.queries}: cannot read ({exc.strerror})") from None
        except ValueError as exc:
            raise UserError(str(exc)) from None
        results = retrieve_batch(index, queries, k, filters)
        lines = trec_run_lines(results, args.run_tag)
        args.run_out.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        print(f"wrote {len(lines)} lines for {len(queries)} queries to {args.run_out}")
        return EXIT_OK
    if not args.query:
        raise UserError("give a QUERY or --queries FILE.jsonl")
    sources = retrieve(index, args.query, k, filters)
    if args.json:
        print(json.dumps(sources_json(sources), ensure_ascii=False))
        return EXIT_OK
    if not sources:
        print("no results (is the index empty?)")
    for row in sources_json(sources):
        say(f"{row['rank']:>2}. [{row['score']:.3f}] {row['title']}  ({row['id']})")
        say(f"    {row['snippet']}")
    return EXIT_OK


def _read_questions(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"id": row.get("id", str(number)), "question": str(row["question"])})
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
            raise UserError(f"{path}:{number}: expected a JSON object with id and question") from None
    return rows


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer import Answerer
    from rag.questions import question_problem

    settings = _settings(args)
    filters = _filters(args)
    answerer = Answerer(_open_index(settings), settings)
    if args.questions:
        if not args.out:
            raise UserError("--questions needs --out ANSWERS.jsonl")
        rows = _read_questions(args.questions)
        for row in rows:
            if question_problem(row["question"], settings):
                raise UserError(f"{args.questions}: question {row['id']}: "
                                f"{question_problem(row['question'], settings)}")  # fmt: skip
        with open(args.out, "w", encoding="utf-8") as out:
            for row in rows:
                result = answerer.ask(row["question"], None, filters)
                out.write(json.dumps({"id": row["id"], **result.model_dump()}, ensure_ascii=False))
                out.write("\n")
        print(f"wrote {len(rows)} answers to {args.out}")
        return EXIT_OK
    if not args.question:
        raise UserError("give a QUESTION or --questions FILE.jsonl")
    too_long = question_problem(args.question, settings)
    if too_long:
        raise UserError(too_long)
    result = answerer.ask(args.question, None, filters)
    if args.format:
        from rag.export import export_text

        print(export_text([result], args.format, answerer.index, settings.export_style), end="")
        return EXIT_OK
    if args.json:
        print(result.model_dump_json())
        return _partial_exit(result)
    say(result.answer)
    if result.citations:
        print()
        for source in result.sources:
            if source.cited:
                link = f"  {source.url}" if source.url else ""
                say(f"[{source.n}] {source.title} ({source.paper_id}){link}")
    for note in result.notes:
        say(f"note: {note}", file=sys.stderr)
    unsupported = sum(not sentence.supported for sentence in result.sentences)
    if unsupported:
        print(f"note: {unsupported} sentence(s) not supported by the abstract they cite "
              "(see --json: sentences)", file=sys.stderr)  # fmt: skip
    print(f"(answered by {result.llm} in {result.timings_ms.get('total', 0):.0f} ms)", file=sys.stderr)
    return _partial_exit(result)


def _partial_exit(result) -> int:
    """An answer the LLM broke off is not a success: say so (notes name the cause) and fail."""
    if result.complete:
        return EXIT_OK
    print("error: partial answer: the LLM stopped before finishing; the text above is "
          "incomplete", file=sys.stderr)  # fmt: skip
    return EXIT_ERROR


def cmd_chat(args: argparse.Namespace) -> int:
    from ui.auth import check_bind, load_users

    settings = _settings(args)
    users = load_users(settings, args.auth)
    check_bind(settings.host, users, args.no_auth)
    from ui.app import launch  # gradio is slow to import: only once the flags are valid

    launch(settings, users=users, ingest_bundled=not args.no_bundled_corpus)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from eval.harness import run_eval

    out = args.out or Path("eval-runs") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    progress = (
        lambda done, total: print(f"\r  {done}/{total} questions", end="", file=sys.stderr)
    ) if sys.stderr.isatty() else None  # fmt: skip
    report = run_eval(
        args.suite, _settings(args), out, retrieval_only=args.retrieval_only,
        compare=args.compare, progress=progress,
    )  # fmt: skip
    if progress:
        print(file=sys.stderr)
    for name, value in report.metrics.items():
        print(f"{name:>24}: {value:.4g}")
    for name, delta in (report.comparison or {}).get("metrics", {}).items():
        print(f"{'Δ ' + name:>24}: {delta['delta']:+.4g} [{delta['low']:+.4g}, {delta['high']:+.4g}]")
    print(f"report: {report.report_html}")
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    from ui.mcp import build_mcp

    settings = _settings(args)
    build_mcp(settings, _open_index(settings)).run()  # stdio until the client closes it
    return EXIT_OK


def cmd_local_llm(args: argparse.Namespace) -> int:
    from rag.local_llm import ensure_local_server, stop_local_server

    settings = _settings(args)
    if args.action == "start":
        server = ensure_local_server(settings)
        print(f"llama.cpp server at {server.base_url} (model {server.model}, pid {server.pid})")
    else:
        print("stopped" if stop_local_server(settings) else "no local server was running")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest,
    "stats": cmd_stats,
    "check": cmd_check,
    "repair": cmd_repair,
    "retrieve": cmd_retrieve,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "local-llm": cmd_local_llm,
    "mcp": cmd_mcp,
    "eval": cmd_eval,
}


def _expected_errors() -> tuple[type[BaseException], ...]:
    from rag.embedder import EmbedderError
    from rag.formats import FormatError
    from rag.index import IndexBusyError, IndexMismatchError
    from rag.llm import LLMError
    from rag.local_llm import LocalLLMError

    return (
        UserError, FormatError, IndexMismatchError, IndexBusyError, EmbedderError, LLMError,
        LocalLLMError,
        ValueError, OSError,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        return COMMANDS[args.command](args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        say(f"error: setting {where}: {message}" if where else f"error: {message}", file=sys.stderr)
    except _expected_errors() as exc:
        say(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    except Exception as exc:  # chromadb's errors, e.g. an index damaged by unlocked writers
        if not type(exc).__module__.startswith("chromadb"):  # (imported lazily: not named)
            raise
        say(f"error: Chroma: {' '.join(str(exc).split())} (run `rag check`)", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
