"""Nobody stalls everyone: answers take slots, LLM answers take scarce ones, waits are shown.

Two pools of slots bound the work the chat UI does at once: `llm_concurrency`
LLM answers (at most `llm_session_concurrency` per user or session), and
`ui_concurrency` extractive answers. They are separate, so a slow or hung
endpoint ties up an LLM slot for at most its deadlines while extractive
answers keep flowing; the Gradio queue itself is not the bottleneck any more.

While an answer waits (for a slot, for the first token) the status line says
so with the elapsed time. The answer runs in a worker thread and this side
wakes every `tick_s`, so a Stop button or a departed user (Gradio closes the
handler) is noticed within a tick; the worker then stops after its current
step, which closes the LLM connection, and gives the slot back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rag.settings import Settings
from ui.memory import trim

TICK_S = 1.0


@dataclass(frozen=True)
class Waiting:
    """A status update while nothing else happens (shown in the status line, not the answer)."""

    status: str


class Slots:
    """`total` slots shared by everyone, at most `per_owner` held by one owner at once."""

    def __init__(self, total: int, per_owner: int):
        self.total, self.per_owner = max(1, total), max(1, per_owner)
        self.held: Counter[str] = Counter()
        self.waiting = 0
        self.changed = threading.Condition()

    def try_acquire(self, owner: str, timeout_s: float) -> bool:
        """Take a slot for `owner`, waiting up to `timeout_s`; False if none came free."""
        with self.changed:
            self.waiting += 1
            try:
                return self.changed.wait_for(lambda: self._free(owner), timeout_s) and (
                    self._take(owner)
                )
            finally:
                self.waiting -= 1

    def _free(self, owner: str) -> bool:
        return sum(self.held.values()) < self.total and self.held[owner] < self.per_owner

    def _take(self, owner: str) -> bool:
        self.held[owner] += 1
        return True

    def release(self, owner: str) -> None:
        with self.changed:
            self.held[owner] -= 1
            if self.held[owner] <= 0:
                del self.held[owner]
            self.changed.notify_all()

    def in_use(self) -> int:
        with self.changed:
            return sum(self.held.values())


class AnswerGate:
    """Runs one answer inside the right slot, reporting waits as `Waiting` items."""

    def __init__(self, settings: Settings, tick_s: float = TICK_S):
        self.llm = Slots(settings.llm_concurrency, settings.llm_session_concurrency)
        self.extractive = Slots(settings.ui_concurrency, settings.ui_concurrency)
        self.tick_s = tick_s

    def run(
        self, answer: Callable[[], Iterator[Any]], uses_llm: bool, owner: str
    ) -> Iterator[Any]:
        """Yield `answer()`'s items once a slot is held, and `Waiting` while waiting."""
        slots = self.llm if uses_llm else self.extractive
        started = time.monotonic()
        while not slots.try_acquire(owner, self.tick_s):
            ahead = slots.waiting
            kind = "an LLM slot" if uses_llm else "a free answer slot"
            yield Waiting(f"waiting for {kind} · {time.monotonic() - started:.0f} s"
                          + (f" · {ahead} waiting" if ahead > 1 else ""))  # fmt: skip
        yield from _in_worker(answer, lambda: slots.release(owner), self.tick_s, uses_llm)


def _in_worker(
    answer: Callable[[], Iterator[Any]], release: Callable[[], None], tick_s: float,
    uses_llm: bool,
) -> Iterator[Any]:  # fmt: skip
    """Iterate `answer()` in a daemon thread (which releases the slot when it ends),
    yielding its items, and a Waiting every `tick_s` of silence."""
    items: queue.Queue = queue.Queue()
    stop = threading.Event()
    done = object()

    def work() -> None:
        iterator = None
        try:
            iterator = answer()
            for item in iterator:
                items.put(item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the UI side, which reports it
            items.put(exc)
        finally:
            if iterator is not None and hasattr(iterator, "close"):
                iterator.close()  # closes the LLM stream: the endpoint sees the hang-up
            release()
            trim()  # what the answer freed goes back to the OS, not into an arena
            items.put(done)

    threading.Thread(target=work, name="answer", daemon=True).start()
    started, text_seen = time.monotonic(), False
    try:
        while True:
            try:
                item = items.get(timeout=tick_s)
            except queue.Empty:
                waited = time.monotonic() - started
                what = "writing" if text_seen else (
                    "waiting for the language model" if uses_llm else "searching the papers"
                )  # fmt: skip
                yield Waiting(f"{what}… {waited:.0f} s")
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            text_seen = text_seen or isinstance(item, str)
            yield item
    finally:
        stop.set()
