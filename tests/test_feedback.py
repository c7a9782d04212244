"""The feedback store: asks and votes in SQLite (WAL), shared by the API, page and Slack."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from service.feedback import DAY_S, AskRecord, FeedbackStore


def record(question: str = "Pod 是什么？", **extra: object) -> AskRecord:
    return AskRecord(
        question=question, rewritten_query=question, found=True, answer="Pod 是最小单元。[1]",
        confidence=0.9, citations=[{"id": 1, "source": "k8s-notes.md"}], **extra,  # type: ignore[arg-type]
    )


def test_an_answer_is_kept_with_what_the_asker_saw(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=30)
    kept = record(source="slack", user_id="U1", channel_id="C1")
    assert store.record_ask(kept)
    again = store.get_ask(kept.id)
    assert again == kept
    mode = sqlite3.connect(tmp_path / "fb.sqlite3").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_a_second_click_changes_the_vote_instead_of_adding_one(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=30)
    ask = record()
    store.record_ask(ask)
    assert store.vote(ask.id, 1, "U1", "slack") is not None
    store.vote(ask.id, 1, "U2", "web")
    tally = store.vote(ask.id, -1, "U1", "slack")
    assert tally is not None and (tally.up, tally.down) == (1, 1)
    assert store.vote("no-such-answer", 1, "U1", "web") is None


def test_retention_zero_keeps_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=0)
    ask = record()
    assert not store.record_ask(ask)
    assert store.get_ask(ask.id) is None
    assert store.vote(ask.id, 1, "U1", "web") is None
    assert not (tmp_path / "fb.sqlite3").exists()


def test_old_questions_and_their_votes_are_forgotten(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=7)
    old, new = record(ts=1_000_000.0), record(ts=1_000_000.0 + 6 * DAY_S)
    store.record_ask(old)
    store.record_ask(new)
    store.vote(old.id, -1, "U1", "web")
    assert store.purge(now=1_000_000.0 + 8 * DAY_S) == 1
    assert store.get_ask(old.id) is None and store.get_ask(new.id) is not None
    with store.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0


def test_concurrent_votes_from_two_stores_on_one_file_are_all_kept(tmp_path: Path) -> None:
    # Two store objects stand for the web process and the Slack process.
    web = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=30)
    slack = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=30)
    ask = record()
    web.record_ask(ask)

    def votes(store: FeedbackStore, prefix: str) -> None:
        for i in range(50):
            assert store.vote(ask.id, 1 if i % 2 else -1, f"{prefix}{i}", "web") is not None

    threads = [threading.Thread(target=votes, args=(s, p)) for s, p in ((web, "W"), (slack, "S"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally = web.tally(ask.id)
    assert tally.up + tally.down == 100
