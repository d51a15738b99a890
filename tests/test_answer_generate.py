"""Prompt building: numbered sources packed into the window with room for the answer."""

from __future__ import annotations

import tiktoken

from rag.answer.generate import build_prompt
from rag.tokens import count_tokens, encoding, truncate_tokens
from rag.papers import Paper
from rag.prompts import SENTINEL, load_prompt
from rag.retrieve import Source
from rag.settings import PROJECT_ROOT

PROMPTS = PROJECT_ROOT / "prompts"


def source(number: int, words: int) -> Source:
    abstract = " ".join(f"word{number}_{i}" for i in range(words))
    paper = Paper(id=f"p{number}", title=f"Paper {number}", abstract=abstract,
                  authors="A. Author", year=2020 + number)  # fmt: skip
    return Source(paper=paper, score=1.0 - number / 10, best_chunk=abstract)


def build(sources, window: int, answer_tokens: int = 200):
    return build_prompt(
        "What do the papers find?", sources, load_prompt(PROMPTS, "answer"),
        load_prompt(PROMPTS, "system"), window, answer_tokens,
    )  # fmt: skip


def test_encoding_loads_offline():
    # rag pins TIKTOKEN_CACHE_DIR to llama-index's bundled cache; no network here.
    assert isinstance(encoding(), tiktoken.Encoding)
    assert count_tokens("hello world") == 2


def test_everything_fits_a_large_window():
    built = build([source(n, 50) for n in range(1, 4)], window=16000)
    assert len(built.sources) == 3
    user = built.messages[1]["content"]
    for n in range(1, 4):
        assert f"[{n}] Paper {n} ({2020 + n}; A. Author)" in user
    assert SENTINEL in user and "from 1 to 3" in user


def test_small_window_leaves_room_for_the_answer():
    sources = [source(n, 400) for n in range(1, 6)]
    built = build(sources, window=1500, answer_tokens=300)
    assert 1 <= len(built.sources) < 5
    assert built.sources == sources[: len(built.sources)]  # best first, a prefix
    assert built.prompt_tokens + 300 <= 1500
    assert "from 1 to" in built.messages[1]["content"]


def test_truncate_tokens_marks_the_cut():
    text = " ".join(["token"] * 100)
    assert truncate_tokens(text, 10).endswith(" …")
    assert truncate_tokens("short text", 10) == "short text"
