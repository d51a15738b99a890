"""Prompt size and time to first token with an LLM, on a few questions (docs/answers.md).

    python -m bench.prompt_ttft --llm local --index /tmp/answers-seed-index -n 5
    python -m bench.prompt_ttft --llm openai --base-url http://127.0.0.1:PORT/v1 -n 5

For each question: prompt tokens (tiktoken cl100k_base over the messages sent),
milliseconds from asking to the first generated text (retrieval and evidence
included, the same for every prompt style), the total, and the generation rate:
streamed pieces (llama.cpp streams one token per piece) and cl100k tokens of the
generated text per second after the first piece. It only uses
`Answerer.stream` and `AnswerResult.prompt`, so the same script measures an older
checkout of the answer stage (run it from that checkout) for a before/after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import rag  # noqa: F401  (offline environment first)
from rag.answer import Answerer, AnswerResult
from rag.index import PaperIndex
from rag.settings import load_settings

try:
    from rag.tokens import count_tokens
except ImportError:  # an older checkout: token counting lived in rag/context.py
    from rag.context import count_tokens

QUESTIONS = [
    "What is the lottery ticket hypothesis?",
    "How many image-text pairs does LAION-5B contain?",
    "Compare LAION-5B and DataComp.",
    "How can quantile regression models be aggregated?",
    "How does TokenUnify combine different token prediction objectives?",
]


def measure(answerer: Answerer, question: str) -> dict:
    started = time.perf_counter()
    first = None
    result = None
    pieces: list[str] = []
    for item in answerer.stream(question):
        if isinstance(item, AnswerResult):
            result = item
        elif isinstance(item, str):
            pieces.append(item)
            if first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    generating = total - (first or total)
    messages = (result.prompt if result else None) or []
    return {
        "question": question,
        "prompt_tokens": sum(count_tokens(m["content"]) for m in messages),
        "first_text_ms": round((first or total) * 1000),
        "total_ms": round(total * 1000),
        "pieces_per_s": round((len(pieces) - 1) / generating, 1) if generating else None,
        "tokens_per_s": round(count_tokens("".join(pieces[1:])) / generating, 1) if generating else None,
        "llm": result.llm if result else "",
        "cited": len(result.citations) if result else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/answers-seed-index"))
    parser.add_argument("--llm", default="local", choices=["local", "openai"])
    parser.add_argument("--base-url", dest="openai_base_url")
    parser.add_argument("-n", type=int, default=5, help="questions (at most 5)")
    args = parser.parse_args(argv)
    overrides = {"openai_base_url": args.openai_base_url, "openai_api_key": "local"} \
        if args.openai_base_url else {}  # fmt: skip
    settings = load_settings(index=args.index, llm=args.llm, **overrides)
    answerer = Answerer(PaperIndex(settings), settings)
    rows = [measure(answerer, question) for question in QUESTIONS[: args.n]]
    for row in rows:
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({
        "llm": args.llm, "questions": len(rows),
        "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] for r in rows)),
        "first_text_ms_median": round(statistics.median(r["first_text_ms"] for r in rows)),
        "total_ms_median": round(statistics.median(r["total_ms"] for r in rows)),
        "pieces_per_s_median": statistics.median(r["pieces_per_s"] or 0 for r in rows),
        "tokens_per_s_median": statistics.median(r["tokens_per_s"] or 0 for r in rows),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
