"""Where the chat server's memory goes per answer: the chat handler in-process, traced.

Drives `ui.chat.ChatTab.respond` the way the Gradio server does (each answer
in a fresh worker thread, one `ChatTurns` state per browser session, the
questions of bench/answers_dev.jsonl in turn) over an index of the bundled
corpus, with tracemalloc on after a warm-up. At each checkpoint it records
the traced Python heap, the server process's RSS and the pickled size of all
session states, and between the first and last checkpoint the allocation sites
that grew most:

    python -m bench.chat_memory --sessions 10 --answers 50,200
    python -m bench.chat_memory --sessions 10 --answers 50,200 --session-turns 100000  # unbounded

`--session-turns` overrides settings.ui_session_turns (how many full results a
session keeps); a large value reproduces the unbounded state of before.
Results go to bench/results/chat-memory-<turns>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import threading
import tracemalloc
from pathlib import Path

from bench.load import RESULTS, load_questions, machine, rss_mb
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.settings import BUNDLED_CORPUS, load_settings
from ui.chat import ChatTab, ChatTurns
from ui.memory import limit_arenas

OPTIONS = (5, "extractive", None, "default", "", None, None, "", "", False)


def answer_in_thread(tab: ChatTab, question: str, turns: ChatTurns) -> ChatTurns:
    """One answer as the server runs it: the handler iterated in a new worker thread."""
    last: list = []

    def run() -> None:
        for update in tab.respond(question, [], turns, *OPTIONS, owner=f"s{id(turns)}"):
            last[:] = [update]

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=300)
    return last[0][2] if last else turns


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--answers", default="50,200", help="checkpoints (answers in total)")
    parser.add_argument("--warmup", type=int, default=10, help="answers before tracing starts")
    parser.add_argument("--session-turns", type=int, help="override settings.ui_session_turns")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-load-index"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    overrides = {"ui_session_turns": args.session_turns} if args.session_turns else {}
    settings = load_settings(index=args.index, llm="extractive", **overrides)
    limit_arenas(settings.ui_malloc_arenas)  # as `rag chat` does
    index = PaperIndex(settings)
    if index.paper_count() == 0:
        ingest_paths(index, [BUNDLED_CORPUS])
    questions = load_questions()
    tab = ChatTab(settings, index)
    for number in range(args.warmup):  # embedder and caches loaded, in a throwaway session
        answer_in_thread(tab, questions[number % len(questions)], ChatTurns())
    sessions = [ChatTurns() for _ in range(args.sessions)]
    checkpoints = [int(mark) for mark in args.answers.split(",")]
    tracemalloc.start(8)
    marks, snapshots, given = {}, [], 0
    for mark in checkpoints:
        while given < mark:
            session = given % args.sessions
            sessions[session] = answer_in_thread(
                tab, questions[given % len(questions)], sessions[session]
            )
            given += 1
        traced, _ = tracemalloc.get_traced_memory()
        marks[str(mark)] = {
            "traced_mb": round(traced / 2**20, 1), "rss_mb": round(rss_mb(os.getpid()), 1),
            "session_state_kb": round(sum(len(pickle.dumps(s)) for s in sessions) / 1024, 1),
            "turns_kept": sum(len(s.recent) for s in sessions),
        }  # fmt: skip
        snapshots.append(tracemalloc.take_snapshot())
        print(f"after {mark} answers: {marks[str(mark)]}", file=sys.stderr, flush=True)
    grown = snapshots[-1].compare_to(snapshots[0], "lineno")[:12]
    result = {
        "session_turns": settings.ui_session_turns, "sessions": args.sessions, "at": marks,
        "top_growth": [{"where": str(stat.traceback[0]), "kb": round(stat.size_diff / 1024, 1),
                        "blocks": stat.count_diff} for stat in grown],  # fmt: skip
        "machine": machine(),
        "command": "python -m bench.chat_memory " + " ".join(argv or sys.argv[1:]),
    }
    out = args.out or RESULTS / f"chat-memory-{settings.ui_session_turns}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
