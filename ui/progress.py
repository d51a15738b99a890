"""What a user sees while an answer or an upload is under way, and when it ends early.

Waiting is never silent: the status line says what the answer waits for
(an LLM slot, the first token) and for how long; an answer the LLM broke off
carries a banner above its text, so truncated text is never taken as whole. An
upload's ingest drives the one progress bar from the library's own progress source
(count, rate, ETA: rag.ingest.ProgressReporter, which also feeds the CLI's bar).
"""

from __future__ import annotations

from collections.abc import Callable

from rag.answer import AnswerResult
from rag.ingest import ProgressReporter

INCOMPLETE_BANNER = (
    '<div class="answer-incomplete" role="alert" style="border-left:4px solid #d97706;'
    'background:#fffbeb;color:#92400e;padding:6px 10px;margin-bottom:6px">'
    "<strong>Incomplete answer.</strong> The language model stopped before finishing "
    "(see the note below); the text is what arrived. Ask again, or pick another "
    "generator in <strong>Settings</strong>.</div>"
)


def with_banner(result: AnswerResult, rendered: str) -> str:
    """The rendered answer, with the incomplete-answer banner first when it was cut."""
    return rendered if result.complete else INCOMPLETE_BANNER + rendered


def ingest_progress(progress: Callable[..., object]) -> ProgressReporter:
    """A gr.Progress as ingest_paths' progress callback: fraction done, and the same
    'done/total papers, rate, ETA' line the CLI prints."""
    return ProgressReporter(
        lambda done, total, line: progress(done / max(total, 1), desc=line)
    )
