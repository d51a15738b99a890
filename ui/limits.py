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

The answers running at once also share the cores: each answer's embedding
work gets `answer_threads` torch threads, so answers × threads never exceeds
the cores (docs/BENCHMARKS.md, "UI under load").
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rag.settings import Settings
from ui.memory import trim

TICK_S = 1.0


@dataclass(frozen=True)
class Waiting:
    """A status update while nothing else happens (shown in the status line, not the answer)."""

    status: str


def answer_threads(cores: int, concurrent_answers: int) -> int:
    """Torch intra-op threads per answer so that the extractive answers that run at
    once use each core once: more threads than cores made the OpenMP workers spin
    against each other (two answers at once on 2 cores: 1 thread each was faster
    than 2 in each of 3 interleaved pairs, by 11 % on average, under load)."""
    return max(1, cores // max(1, concurrent_answers))


class Slots:
    """`total` slots shared by everyone, at most `per_owner` held by one owner at once,
    given out first come, first served.

    A waiter keeps its place in line while it wakes every tick to report its wait
    (`queued`); before, each tick re-entered the race for a slot, so under load a
    newcomer could overtake an old waiter again and again (10 closed-loop users: slot
    wait p50 25 s but p95 126 s; docs/BENCHMARKS.md, "UI under load")."""

    def __init__(self, total: int, per_owner: int):
        self.total, self.per_owner = max(1, total), max(1, per_owner)
        self.held: Counter[str] = Counter()
        self.line: list[tuple[int, str]] = []  # (ticket, owner) of the waiters, oldest first
        self.tickets = itertools.count()
        self.changed = threading.Condition()

    @property
    def waiting(self) -> int:
        return len(self.line)

    @contextmanager
    def queued(self, owner: str) -> Iterator[Callable[[float], bool]]:
        """A place in line for `owner`: `wait(timeout_s)` is True once the slot is taken
        (and the place left); leaving the block without one gives the place up."""
        place = (next(self.tickets), owner)
        with self.changed:
            self.line.append(place)

        def wait(timeout_s: float) -> bool:
            with self.changed:
                if not self.changed.wait_for(lambda: self._turn_of(place), timeout_s):
                    return False
                self.line.remove(place)
                self.held[owner] += 1
                self.changed.notify_all()  # a further free slot may be the next waiter's
                return True

        try:
            yield wait
        finally:
            with self.changed:
                if place in self.line:
                    self.line.remove(place)
                    self.changed.notify_all()

    def try_acquire(self, owner: str, timeout_s: float) -> bool:
        """Take a slot for `owner`, waiting in line up to `timeout_s`; False if none came."""
        with self.queued(owner) as wait:
            return wait(timeout_s)

    def _turn_of(self, place: tuple[int, str]) -> bool:
        """A free slot is this place's: no waiter ahead that could take it first."""
        free = self.total - sum(self.held.values())
        room = {owner: self.per_owner - self.held[owner] for _, owner in self.line}
        if room[place[1]] <= 0:
            return False
        for ahead in self.line:
            if ahead == place:
                return free > 0
            if room[ahead[1]] > 0:  # this waiter could take a slot: it goes first
                room[ahead[1]] -= 1
                free -= 1
        return False

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
        with slots.queued(owner) as wait:
            while not wait(self.tick_s):
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
