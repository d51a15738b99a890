"""Token counts for prompt budgets (tiktoken cl100k_base from llama-index's bundled cache).

Shared by prompt building (rag/answer/generate.py) and the LLM reranker (rag/rerank.py);
it depends on nothing else in `rag`, so neither has to import the other.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, limit: int) -> str:
    tokens = encoding().encode(text, disallowed_special=())
    return text if len(tokens) <= limit else encoding().decode(tokens[:limit]) + " …"
