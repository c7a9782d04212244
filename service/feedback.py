"""What was asked, what was answered and how people voted: one SQLite file in WAL mode,
shared by the API, the web page and the Slack bot (and by several processes at once).

Each thread keeps its own connection (SQLite connections must not cross threads): opening
and closing one per call made SQLite checkpoint and wait for the disk on every /ask,
~20 ms a request. Writers wait for each other (busy timeout) instead of failing, so
concurrent votes from Slack and the page are all kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Source = Literal["api", "web", "slack", "cli"]
Vote = Literal[1, -1]

BUSY_TIMEOUT_S = 30.0
DAY_S = 86_400
PURGE_EVERY_S = 3_600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS asks (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    source TEXT NOT NULL,
    user_id TEXT,
    channel_id TEXT,
    question TEXT NOT NULL,
    rewritten_query TEXT NOT NULL,
    found INTEGER NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    confidence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS asks_ts ON asks (ts);
CREATE TABLE IF NOT EXISTS votes (
    ask_id TEXT NOT NULL REFERENCES asks (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    source TEXT NOT NULL,
    channel_id TEXT,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    ts REAL NOT NULL,
    PRIMARY KEY (ask_id, user_id)
);
CREATE INDEX IF NOT EXISTS votes_ts ON votes (ts);
"""


@dataclass(frozen=True)
class AskRecord:
    """One answered (or declined) question, as the asker saw it."""

    question: str
    rewritten_query: str
    found: bool
    answer: str
    confidence: float
    citations: list[dict[str, Any]] = field(default_factory=list)
    source: Source = "api"
    user_id: str | None = None
    channel_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Tally:
    up: int
    down: int


class FeedbackStore:
    """Asks and votes, kept for `retention_days` (0: nothing is kept, votes are refused)."""

    def __init__(self, path: Path, retention_days: int):
        self.path = path
        self.retention_days = retention_days
        self._purged_at = 0.0
        self._local = threading.local()
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            self.purge()

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in a transaction: committed on success, rolled back
        on error."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            # Under WAL, NORMAL waits for the disk at checkpoints, not at every commit; a
            # power cut may lose the last commits, a crash of this process loses nothing.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        with db:
            yield db

    def record_ask(self, record: AskRecord) -> bool:
        """Keep `record` if the retention setting allows; True when it was kept."""
        if not self.enabled:
            return False
        if record.ts - self._purged_at > PURGE_EVERY_S:
            self.purge(record.ts)
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO asks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id, record.ts, record.source, record.user_id, record.channel_id,
                    record.question, record.rewritten_query, int(record.found), record.answer,
                    json.dumps(record.citations, ensure_ascii=False), record.confidence,
                ),
            )
        return True

    def get_ask(self, ask_id: str) -> AskRecord | None:
        if not self.enabled:
            return None
        with self.connect() as db:
            row = db.execute("SELECT * FROM asks WHERE id = ?", (ask_id,)).fetchone()
        if row is None:
            return None
        return AskRecord(
            id=row["id"], ts=row["ts"], source=row["source"], user_id=row["user_id"],
            channel_id=row["channel_id"], question=row["question"],
            rewritten_query=row["rewritten_query"], found=bool(row["found"]),
            answer=row["answer"], citations=json.loads(row["citations"]),
            confidence=row["confidence"],
        )

    def vote(
        self, ask_id: str, vote: Vote, user_id: str, source: Source,
        channel_id: str | None = None,
    ) -> Tally | None:
        """Store `user_id`'s vote on an answer (a second click changes it). None when the
        answer is unknown (never stored, or past retention)."""
        if not self.enabled:
            return None
        with self.connect() as db:
            if db.execute("SELECT 1 FROM asks WHERE id = ?", (ask_id,)).fetchone() is None:
                return None
            db.execute(
                "INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ask_id, user_id) "
                "DO UPDATE SET vote = excluded.vote, ts = excluded.ts",
                (ask_id, user_id, source, channel_id, vote, time.time()),
            )
            return _tally(db, ask_id)

    def tally(self, ask_id: str) -> Tally:
        if not self.enabled:
            return Tally(0, 0)
        with self.connect() as db:
            return _tally(db, ask_id)

    def purge(self, now: float | None = None) -> int:
        """Forget asks (and their votes) older than the retention period."""
        if not self.enabled:
            return 0
        now = time.time() if now is None else now
        self._purged_at = now
        cutoff = now - self.retention_days * DAY_S
        with self.connect() as db:
            return db.execute("DELETE FROM asks WHERE ts < ?", (cutoff,)).rowcount


def _tally(db: sqlite3.Connection, ask_id: str) -> Tally:
    row = db.execute(
        "SELECT COALESCE(SUM(vote = 1), 0), COALESCE(SUM(vote = -1), 0) FROM votes "
        "WHERE ask_id = ?",
        (ask_id,),
    ).fetchone()
    return Tally(int(row[0]), int(row[1]))
