"""Answer cache: metrics can be recomputed without regenerating answers.

The key is everything an answer depends on: the question and its filters, the
answer-relevant settings, the prompt hashes, the model, the indexed corpus and
the source code of the `rag` package. Change any of them and the answer is
generated afresh: an eval run to see whether a code change helped must not be
answered from before the change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import rag
from rag.filters import RetrievalFilters
from rag.settings import Settings

NOT_ANSWER_SETTINGS = {
    "index", "chroma_host", "chroma_port", "collection", "state_dir", "host", "port",
    "openai_api_key", "llm_timeout_s", "llm_max_retries", "local_startup_timeout_s",
    "prompts_dir", "ingest_batch_papers", "embed_batch_size", "eval_cache_dir",
    "eval_judge_repeats", "eval_judge_temperature", "eval_bootstrap_resamples",
}  # fmt: skip
"""Settings that cannot change an answer (locations, timeouts, eval knobs). Every other
setting, including ones added later, is part of the key: stale answers are worse than misses."""


def answer_settings(settings: Settings) -> dict:
    """The settings an answer depends on, JSON-safe and secret-free."""
    return settings.model_dump(mode="json", exclude=NOT_ANSWER_SETTINGS)


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the rag package's Python source (paths and contents)."""
    root = Path(rag.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(
    question: str, filters: RetrievalFilters | None, settings: Settings,
    prompt_hashes: dict[str, str], model: str, corpus: str,
) -> str:  # fmt: skip
    material = {
        "question": question,
        "filters": asdict(filters) if filters else None,
        "settings": answer_settings(settings),
        "prompts": prompt_hashes,
        "model": model,
        "corpus": corpus,
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class JsonCache:
    """One JSON file per key under a directory; unreadable entries count as misses."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
        temporary.replace(path)  # atomic: an interrupted run never leaves half a file
