"""Replayed Slack requests (issue 12): a correctly signed request captured and sent again.
Within Slack's 5 minutes the signature is still valid, so the event's id is what stops it
(answered once); later, the timestamp is too old and it is refused with 401. Bad and missing
signatures and XSS are covered in tests/test_slack.py and tests/test_web.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import NOTES
from tests.servers import notesqa_server
from tests.slack_fake import BOT_USER, FakeSlack, sign

SECRET = "replay-signing-secret"
CHANNEL = "C0REPLAY"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeSlack) -> Iterator[str]:
    work = tmp_path_factory.mktemp("replay")
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / NOTES.name).write_text(NOTES.read_text("utf-8"), "utf-8")
    env = {"SLACK_BOT_TOKEN": "xoxb-replay", "SLACK_SIGNING_SECRET": SECRET,
           "NOTESQA_SLACK_API_URL": fake.api_url, "NOTESQA_MODEL": "hashing",
           "NOTESQA_RATE_LIMIT_PER_MINUTE": "0"}
    with notesqa_server(work, env=env, corpus=corpus) as base:
        yield base


def mention(fake: FakeSlack, event_id: str) -> str:
    ts = fake.next_ts()
    text = f"<@{BOT_USER}> Secret 是什么？"
    fake.add_message(CHANNEL, {"type": "message", "user": "U0ALICE", "text": text, "ts": ts})
    return json.dumps({
        "token": "unused", "team_id": "T0TEAM", "api_app_id": "A0NOTESQA",
        "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
        "event": {"type": "app_mention", "user": "U0ALICE", "text": text, "ts": ts,
                  "channel": CHANNEL},
    })


def test_a_replay_within_five_minutes_is_answered_once(server: str, fake: FakeSlack) -> None:
    fake.reset()
    body = mention(fake, "Ev0REPLAYED1")
    headers = {"Content-Type": "application/json", **sign(SECRET, body)}
    first = httpx.post(f"{server}/slack/events", content=body, headers=headers, timeout=10)
    assert first.status_code == 200
    fake.wait_for("chat.update")
    # The very same bytes and headers, no X-Slack-Retry-Num: a replay, not a retry.
    again = httpx.post(f"{server}/slack/events", content=body, headers=headers, timeout=10)
    assert again.status_code == 200
    time.sleep(1)
    assert len(fake.of("chat.postMessage")) == 1


def test_a_replay_after_five_minutes_gets_401(server: str, fake: FakeSlack) -> None:
    fake.reset()
    body = mention(fake, "Ev0REPLAYED2")
    # Captured six minutes ago, validly signed then, sent now.
    headers = {"Content-Type": "application/json",
               **sign(SECRET, body, timestamp=int(time.time()) - 6 * 60)}
    r = httpx.post(f"{server}/slack/events", content=body, headers=headers, timeout=10)
    assert r.status_code == 401
    time.sleep(0.5)
    assert not fake.of("chat.postMessage")
