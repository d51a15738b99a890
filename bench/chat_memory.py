"""What a chat session holds in the server per answer, with and without the turn bound.

Answers `--answers` dev questions (extractive, the bundled corpus) and measures
each result as the session keeps it (pickled `AnswerResult`) and as Gradio keeps
it (the sources panel's HTML, which Gradio stores per session as the panel's
last value). From these it projects one session's state after `--turns` answers
when every result is kept (before) and when only `ui_session_turns` are:

    python -m bench.chat_memory --answers 8 --turns 100

With `--rss 10,40,100` it instead measures this process's RSS after that many
answers of the chat handler itself (`ChatTab.respond`, two answers at a time in
fresh threads, ten sessions, arenas capped and cores shared as `rag chat` does):
the server's answer path without Gradio's queue and HTTP.

Results go to bench/results/chat-memory.json (chat-memory-rss.json with --rss).
"""

from __future__ import annotations

import argparse
import json
import pickle
import os
import statistics
import sys
import threading
from pathlib import Path

from bench.load import RESULTS, load_questions, machine, rss_mb
from rag.answer import Answerer
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.render import chat_sources_html
from rag.settings import BUNDLED_CORPUS, Settings, load_settings
from ui.app import share_cores
from ui.chat import ChatTab, ChatTurns
from ui.memory import limit_arenas

OPTIONS = (5, "extractive", None, "default", "", None, None, "", "", False)


def handler_rss(settings: Settings, index: PaperIndex, marks: list[int]) -> dict[str, float]:
    """RSS (MB) after each mark of answers through ChatTab.respond, two at a time."""
    limit_arenas(settings.ui_malloc_arenas)
    share_cores(settings)
    tab, questions = ChatTab(settings, index), load_questions()
    sessions = [ChatTurns() for _ in range(10)]

    def answer(number: int) -> None:
        session = number % len(sessions)
        for update in tab.respond(questions[number % len(questions)], [], sessions[session],
                                  *OPTIONS, owner=f"user{session}"):  # fmt: skip
            sessions[session] = update[2]

    given, rss = 0, {}
    for mark in marks:
        while given < mark:
            workers = [threading.Thread(target=answer, args=(given + i,)) for i in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=600)
            given += len(workers)
        rss[str(mark)] = round(rss_mb(os.getpid()), 1)
        print(f"after {mark} answers: {rss[str(mark)]} MB", file=sys.stderr, flush=True)
    return rss


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--turns", type=int, default=100, help="answers in one long chat")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-load-index"))
    parser.add_argument("--rss", help="answer counts, e.g. 10,40,100: the handler's RSS after each")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settings = load_settings(index=args.index, llm="extractive")
    index = PaperIndex(settings)
    if index.paper_count() == 0:
        ingest_paths(index, [BUNDLED_CORPUS])
    command = "python -m bench.chat_memory " + " ".join(argv or sys.argv[1:])
    if args.rss:
        marks = [int(mark) for mark in args.rss.split(",")]
        outcome = {"rss_mb_after": handler_rss(settings, index, marks),
                   "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "default"),
                   "machine": machine(), "load_average": os.getloadavg(), "command": command}
        out = args.out or RESULTS / "chat-memory-rss.json"
        out.write_text(json.dumps(outcome, indent=2) + "\n")
        print(json.dumps(outcome, indent=2))
        return outcome
    answerer = Answerer(index, settings)
    results = [answerer.ask(question) for question in load_questions()[: args.answers]]
    result_kb = statistics.fmean(len(pickle.dumps(result)) for result in results) / 1024
    panel_kb = statistics.fmean(len(chat_sources_html([r]).encode()) for r in results) / 1024
    keep = settings.ui_session_turns
    chat = (results * (args.turns // len(results) + 1))[: args.turns]
    panel_all = len(chat_sources_html(chat).encode()) / 1024
    panel_kept = len(chat_sources_html(chat[-keep:], len(chat) - keep).encode()) / 1024
    outcome = {
        "per_answer_kb": {"result_pickled": round(result_kb, 1),
                          "sources_html": round(panel_kb, 1)},  # fmt: skip
        "session_after_turns": args.turns,
        "every_result_kept_kb": {"results": round(result_kb * args.turns, 1),
                                 "sources_panel": round(panel_all, 1)},  # fmt: skip
        f"latest_{keep}_kept_kb": {"results": round(result_kb * keep, 1),
                                   "sources_panel": round(panel_kept, 1)},  # fmt: skip
        "machine": machine(),
        "command": command,
    }
    (args.out or RESULTS / "chat-memory.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
    return outcome


if __name__ == "__main__":
    main()
