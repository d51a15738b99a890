"""Saved conversations: every answer of a chat, with its sources and settings, in SQLite.

One database per index (`<index>/conversations.sqlite`), one history per
user: every read and write names the user and only touches that user's rows,
so one user can neither list nor open another's conversation even with its
id. Without logins everybody is the one shared `ANONYMOUS` user.

A turn stores the whole `AnswerResult` as JSON (answer, citations, sources
with their abstracts, support), plus the options it was answered with (never
an API key), so a reopened conversation shows exactly what was seen.
SQLite in WAL mode with a busy timeout lets the UI's worker threads and
several processes share the file.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answer import AnswerResult

ANONYMOUS = "anonymous"
MAX_TITLE_CHARS = 120
DB_NAME = "conversations.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (user, updated DESC);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    result TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    turns: int
    updated: float


@dataclass
class Conversation:
    id: str
    title: str
    turns: list[AnswerResult] = field(default_factory=list)
    settings: list[dict[str, Any]] = field(default_factory=list)


def title_from(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1] + "…"


def _like(query: str) -> str:
    """A LIKE pattern matching `query` literally anywhere (% and _ escaped)."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConversationStore:
    """Per-user conversations in one SQLite file."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def for_index(cls, index_dir: Path) -> "ConversationStore":
        return cls(index_dir / DB_NAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per operation: safe from any thread, committed on success."""
        db = sqlite3.connect(self.path, timeout=10.0)
        db.execute("PRAGMA foreign_keys=ON")
        try:
            with db:
                yield db
        finally:
            db.close()

    def secret(self) -> str:
        """A random secret kept with the conversations (encrypts the browser's pointer to its
        current conversation, so the pointer survives a server restart)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('browser_secret', ?)", (secrets.token_hex(16),)
            )
            return db.execute("SELECT value FROM meta WHERE key = 'browser_secret'").fetchone()[0]

    # --- writing --------------------------------------------------------------------------
    def create(self, user: str, title: str) -> str:
        conversation_id = uuid.uuid4().hex
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                (conversation_id, user, title_from(title) or "Untitled", now, now),
            )
        return conversation_id

    def append(
        self, user: str, conversation_id: str, result: AnswerResult, settings: dict[str, Any]
    ) -> bool:
        """Add one answered turn; False when the conversation is not this user's."""
        now = time.time()
        with self._connect() as db:
            if not self._owns(db, user, conversation_id):
                return False
            db.execute(  # position computed in the same statement: concurrent appends are safe
                "INSERT INTO turns SELECT ?, COALESCE(MAX(position) + 1, 0), ?, ?, ?, ?, ? "
                "FROM turns WHERE conversation_id = ?",
                (conversation_id, result.question, result.answer, result.model_dump_json(),
                 json.dumps(settings), now, conversation_id),
            )  # fmt: skip
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        return True

    def sync(
        self, user: str, conversation_id: str | None, turns: list[AnswerResult],
        settings: dict[str, Any], first: int = 0,
    ) -> str:  # fmt: skip
        """Store the turns of a chat that the database does not have yet; returns the id.

        `turns` are the chat's turns from number `first` on (a UI session keeps only its
        latest ones; the earlier ones were stored when they were answered). They extend
        the stored conversation (a reopened chat that went on). A conversation that is
        missing, not this user's, or longer than the chat (the chat was cleared) is not
        touched: a new one is started, titled by the first question given.
        """
        stored = self.turn_count(user, conversation_id) if conversation_id else None
        if stored is None or stored > first + len(turns):
            conversation_id, stored = self.create(user, turns[0].question), first
        for turn in turns[max(0, stored - first) :]:
            self.append(user, conversation_id, turn, settings)
        return conversation_id

    def rename(self, user: str, conversation_id: str, title: str) -> bool:
        title = title_from(title)
        if not title:
            return False
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND user = ?",
                (title, conversation_id, user),
            )
        return cursor.rowcount == 1

    def delete(self, user: str, conversation_id: str) -> bool:
        with self._connect() as db:
            cursor = db.execute(
                "DELETE FROM conversations WHERE id = ? AND user = ?", (conversation_id, user)
            )
        return cursor.rowcount == 1

    # --- reading --------------------------------------------------------------------------
    @staticmethod
    def _owns(db: sqlite3.Connection, user: str, conversation_id: str) -> bool:
        row = db.execute(
            "SELECT 1 FROM conversations WHERE id = ? AND user = ?", (conversation_id, user)
        ).fetchone()
        return row is not None

    def turn_count(self, user: str, conversation_id: str) -> int | None:
        """How many turns the conversation has (None when it is not this user's): a
        count, not a load, because every answer in the UI asks it."""
        with self._connect() as db:
            if not self._owns(db, user, conversation_id):
                return None
            return db.execute(
                "SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]

    def title(self, user: str, conversation_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT title FROM conversations WHERE id = ? AND user = ?",
                (conversation_id, user),
            ).fetchone()
        return row[0] if row else None

    def list(self, user: str, query: str = "", limit: int = 200) -> list[ConversationSummary]:
        """The user's conversations, latest first; `query` matches titles, questions and
        answers (case-insensitive substring)."""
        sql = (
            "SELECT c.id, c.title, COUNT(t.position), c.updated FROM conversations c "
            "LEFT JOIN turns t ON t.conversation_id = c.id WHERE c.user = ?"
        )
        params: list[Any] = [user]
        if query.strip():
            sql += (
                " AND (c.title LIKE ? ESCAPE '\\' OR c.id IN (SELECT conversation_id FROM turns "
                "WHERE question LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\'))"
            )
            params += [_like(query.strip())] * 3
        sql += " GROUP BY c.id ORDER BY c.updated DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def load(self, user: str, conversation_id: str) -> Conversation | None:
        """The conversation with its turns in order; None when it is not this user's."""
        with self._connect() as db:
            head = db.execute(
                "SELECT id, title FROM conversations WHERE id = ? AND user = ?",
                (conversation_id, user),
            ).fetchone()
            if head is None:
                return None
            rows = db.execute(
                "SELECT result, settings FROM turns WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        return Conversation(
            id=head[0], title=head[1],
            turns=[AnswerResult.model_validate_json(result) for result, _ in rows],
            settings=[json.loads(settings) for _, settings in rows],
        )  # fmt: skip
