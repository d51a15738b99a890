"""What a chat session holds in the server per answer, with and without the turn bound.

Answers `--answers` dev questions (extractive, the bundled corpus) and measures
each result as the session keeps it (pickled `AnswerResult`) and as Gradio keeps
it (the sources panel's HTML, which Gradio stores per session as the panel's
last value). From these it projects one session's state after `--turns` answers
when every result is kept (before) and when only `ui_session_turns` are:

    python -m bench.chat_memory --answers 8 --turns 100

Results go to bench/results/chat-memory.json.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
from pathlib import Path

from bench.load import RESULTS, load_questions, machine
from rag.answer import Answerer
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.render import chat_sources_html
from rag.settings import BUNDLED_CORPUS, load_settings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--turns", type=int, default=100, help="answers in one long chat")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-load-index"))
    parser.add_argument("--out", type=Path, default=RESULTS / "chat-memory.json")
    args = parser.parse_args(argv)
    settings = load_settings(index=args.index, llm="extractive")
    index = PaperIndex(settings)
    if index.paper_count() == 0:
        ingest_paths(index, [BUNDLED_CORPUS])
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
        "command": "python -m bench.chat_memory " + " ".join(argv or sys.argv[1:]),
    }
    args.out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
    return outcome


if __name__ == "__main__":
    main()
