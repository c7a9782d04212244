"""The help-desk lead's numbers: per day, share answered, unanswered questions grouped,
most down-voted answers; from `service.stats`, `GET /admin/stats` and `notesqa report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service.app import create_app
from service.feedback import AskRecord, FeedbackStore, Source
from service.stats import build_report, group_questions, normalize

DAY = 86_400
NOTESQA = Path(sys.executable).parent / "notesqa"


@pytest.fixture(scope="module")
def keywords() -> Tokenizer:
    return Tokenizer()


def ask(
    store: FeedbackStore, question: str, found: bool, ts: float, source: Source = "web"
) -> str:
    record = AskRecord(
        question=question, rewritten_query=question, found=found,
        answer="答案。[1]" if found else "笔记中没有找到能回答这个问题的内容。",
        confidence=0.9 if found else 0.1,
        citations=[{"id": 1, "source": "k8s-notes.md", "heading": ["Secret"], "lines": [180, 181]}]
        if found else [],
        source=source, ts=ts,
    )
    assert store.record_ask(record)
    return record.id


def test_per_day_counts_every_channel_and_the_share_answered(
    tmp_path: Path, keywords: Tokenizer
) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=90)
    now = time.time()
    ask(store, "Secret 是什么？", True, now, "web")
    ask(store, "Pod 是什么？", True, now, "slack")
    ask(store, "Kafka 是什么？", False, now, "api")
    ask(store, "Service 是什么？", True, now - 2 * DAY, "cli")
    ask(store, "很久以前的问题", True, now - 30 * DAY, "web")  # outside a 7-day window

    report = build_report(store, keywords.tokenize, days=7, now=now)

    assert len(report.per_day) == 7
    today, two_days_ago = report.per_day[-1], report.per_day[-3]
    assert (today.asked, today.answered) == (3, 2)
    assert today.by_source == {"web": 1, "slack": 1, "api": 1}
    assert today.share_answered == pytest.approx(2 / 3)
    assert (two_days_ago.asked, two_days_ago.by_source) == (1, {"cli": 1})
    assert report.per_day[-2].asked == 0 and report.per_day[-2].share_answered is None
    assert (report.asked, report.answered) == (4, 3)
    body = report.to_json()
    assert body["totals"]["share_answered"] == 0.75
    assert body["totals"]["by_source"] == {"web": 1, "slack": 1, "api": 1, "cli": 1}


def test_near_duplicate_unanswered_questions_are_grouped(
    tmp_path: Path, keywords: Tokenizer
) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=90)
    now = time.time()
    for question in [
        "Kafka 分区重平衡是怎么触发的？",
        "Kafka 分区重平衡是怎么触发的？",
        "kafka分区重平衡怎么触发",  # case, spaces and punctuation differ
        "如何触发 Kafka 重平衡？",  # other words, same keywords
        "Terraform 怎么创建一个 VPC？",
    ]:
        ask(store, question, False, now - 60)
    ask(store, "Kafka 是什么？", True, now - 60)  # answered: not a gap in the notes

    groups = build_report(store, keywords.tokenize, days=1, now=now).unanswered

    assert [(g.question, g.count) for g in groups] == [
        ("Kafka 分区重平衡是怎么触发的？", 4),
        ("Terraform 怎么创建一个 VPC？", 1),
    ]
    assert set(groups[0].variants) == {"kafka分区重平衡怎么触发", "如何触发 Kafka 重平衡？"}
    assert groups[0].sources == {"web": 4}


def test_different_questions_about_one_product_stay_apart(keywords: Tokenizer) -> None:
    rows = [("Kafka 分区怎么扩容？", 1.0, "web"), ("Kafka 消费者组怎么重置位点？", 2.0, "web")]
    groups = group_questions(rows, keywords.tokenize)
    assert len(groups) == 2
    assert normalize("  Kafka，分区？ ") == "kafka分区"


def test_most_down_voted_answers_first(tmp_path: Path, keywords: Tokenizer) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=90)
    now = time.time()
    worst = ask(store, "Ingress 怎么配置？", True, now - 100)
    bad = ask(store, "Secret 放哪里？", True, now - 50)
    liked = ask(store, "Pod 是什么？", True, now - 10)
    for user in ("a", "b"):
        store.vote(worst, -1, user, "web")
    store.vote(worst, 1, "c", "slack")
    store.vote(bad, -1, "a", "slack")
    store.vote(liked, 1, "a", "web")

    report = build_report(store, keywords.tokenize, days=1, now=time.time())

    assert [(a.question, a.down, a.up) for a in report.downvoted] == [
        ("Ingress 怎么配置？", 2, 1),
        ("Secret 放哪里？", 1, 0),
    ]
    assert report.downvoted[0].cited == ["k8s-notes.md:180-181"]
    assert (report.per_day[-1].up, report.per_day[-1].down) == (2, 3)


def test_nothing_is_reported_when_nothing_is_kept(tmp_path: Path, keywords: Tokenizer) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", retention_days=0)
    ask_kept = store.record_ask(AskRecord("Pod？", "Pod？", True, "答。[1]", 0.9))
    report = build_report(store, keywords.tokenize, days=7)
    assert not ask_kept and not report.enabled
    assert report.asked == 0 and report.unanswered == [] and report.downvoted == []
    assert not (tmp_path / "fb.sqlite3").exists()


@pytest.fixture
def client(hashing_settings: Settings) -> Iterator[TestClient]:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    with TestClient(create_app(hashing_settings)) as c:
        yield c


def test_stats_endpoint_counts_asks_and_votes_over_http(client: TestClient) -> None:
    answered = client.post("/ask", json={"question": "Secret 是用来做什么的？", "client": "web"})
    client.post("/ask", json={"question": "Kafka 的分区怎么重新平衡？"})
    client.post("/feedback", json={"id": answered.json()["id"], "vote": "down"})

    r = client.get("/admin/stats?days=7")

    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["totals"]["asked"] == 2
    assert body["totals"]["by_source"] == {"web": 1, "api": 1}
    assert body["unanswered"][0]["question"] == "Kafka 的分区怎么重新平衡？"
    assert body["downvoted"][0]["question"] == "Secret 是用来做什么的？"


def test_stats_page_for_browsers_and_bad_parameters(client: TestClient) -> None:
    page = client.get("/admin/stats", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/stats.js"' in page.text
    assert client.get("/admin/stats?format=json", headers={"Accept": "text/html"}).json()
    bad_days = client.get("/admin/stats?days=0")
    assert bad_days.status_code == 422 and "days" in bad_days.json()["message"]
    bad_format = client.get("/admin/stats?format=xml")
    assert bad_format.status_code == 422 and "format" in bad_format.json()["message"]


def test_report_command_prints_the_same_numbers(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    store = FeedbackStore(db, retention_days=90)
    now = time.time()
    ask(store, "Kafka 分区重平衡是怎么触发的？", False, now - 60, "slack")
    ask(store, "kafka 分区重平衡怎么触发", False, now - 30, "web")
    ask(store, "Secret 是什么？", True, now - 10, "cli")
    env = {**os.environ, "NOTESQA_FEEDBACK_DB": str(db), "COLUMNS": "200"}

    text = subprocess.run(
        [str(NOTESQA), "report", "--days", "7"], capture_output=True, text=True, env=env,
        timeout=120,
    )
    as_json = subprocess.run(
        [str(NOTESQA), "report", "--json"], capture_output=True, text=True, env=env, timeout=120
    )

    assert text.returncode == 0, text.stderr
    assert "提问 3" in text.stdout and "回答率 33%" in text.stdout
    assert "Kafka 分区重平衡是怎么触发的？" in text.stdout
    body = json.loads(as_json.stdout)
    assert body["unanswered"][0]["count"] == 2
    assert body["totals"]["by_source"] == {"slack": 1, "web": 1, "cli": 1}
    off = subprocess.run(
        [str(NOTESQA), "report"], capture_output=True, text=True,
        env={**env, "NOTESQA_RETENTION_DAYS": "0"}, timeout=120,
    )
    assert off.returncode == 0 and "NOTESQA_RETENTION_DAYS=0" in off.stdout
