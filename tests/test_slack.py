"""The Slack bot end to end: the real service (uvicorn, real model) pointed at a fake of
Slack's Web API on loopback, sent correctly signed events, commands and clicks as Slack
sends them. Nothing of bolt or slack_sdk is mocked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.slack.blocks import MAX_BLOCKS, MAX_SECTION_CHARS, SHARE, VOTE_DOWN, VOTE_UP
from service.slack.bot import WEB_API_SCOPES
from tests.conftest import NOTES, cache_root
from tests.servers import NOTESQA, notesqa_server
from tests.slack_fake import (
    BOT_USER,
    FakeSlack,
    FakeSocketMode,
    SlackSender,
    block_texts,
    sign,
)

pytestmark = pytest.mark.slow

SECRET = "test-signing-secret"
HELP_DESK = "https://helpdesk.example.com"
CHANNEL = "C0GENERAL"

# A manifest far longer than one Slack section (3,000 characters): it must be split.
LONG_CONFIGMAP = "\n".join(
    ["# nginx 完整配置", "", "ConfigMap 可以保存一整份 nginx 配置文件，挂载到 Pod 里使用：", "",
     "```yaml", "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: nginx-full-conf",
     "data:", "  nginx.conf: |"]
    + [f"    # 第 {i} 段：upstream backend{i} 的连接设置" + "\n"
       f"    upstream backend{i} {{ server 10.0.{i // 250}.{i % 250}:8080 max_fails=3; }}"
       for i in range(160)]
    + ["```", ""]
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("slack")
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / NOTES.name).write_text(NOTES.read_text("utf-8"), "utf-8")
    (corpus / "nginx-configmap.md").write_text(LONG_CONFIGMAP, "utf-8")
    return work


@pytest.fixture(scope="module")
def server(fake: FakeSlack, work: Path, default_model_dir: Path) -> Iterator[str]:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "NOTESQA_SLACK_API_URL": fake.api_url,
        "NOTESQA_PUBLIC_URL": HELP_DESK,
    }
    with notesqa_server(work, env=env, corpus=work / "corpus") as base:
        yield base


@pytest.fixture
def slack(server: str, fake: FakeSlack) -> SlackSender:
    fake.reset()
    return SlackSender(f"{server}/slack/events", SECRET, fake)


def section_texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(block_texts(blocks))


def within_slack_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    for b in blocks:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= MAX_SECTION_CHARS
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
        if b["type"] == "actions":
            assert all(len(e.get("value", "")) <= 2000 for e in b["elements"])


def final_reply(fake: FakeSlack, channel: str) -> dict[str, Any]:
    """The bot's placeholder, once chat.update has put the answer in its place."""
    posted = fake.wait_for("chat.postMessage")[0]
    update = fake.wait_for("chat.update")[0]
    assert update.params["ts"] == fake.message(channel, update.params["ts"])["ts"]
    return {"posted": posted.params, "update": update.params}


def test_url_verification_is_answered(slack: SlackSender) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aB", "token": "x"})
    r = slack.post(body, "application/json")
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1aB"}


def test_a_mention_is_answered_in_a_thread_with_citations_and_yaml(
    slack: SlackSender, fake: FakeSlack
) -> None:
    started = time.monotonic()
    r, asked = slack.user_says(CHANNEL, f"<@{BOT_USER}> 给我一个 Deployment 的 YAML", mention=True)
    assert r.status_code == 200
    assert time.monotonic() - started < 3  # Slack's deadline for the acknowledgement
    reply = final_reply(fake, CHANNEL)
    # The placeholder goes in a thread under the question, and is updated in place.
    assert reply["posted"]["thread_ts"] == asked["ts"]
    assert "正在查找" in reply["posted"]["text"]
    blocks = reply["update"]["blocks"]
    within_slack_limits(blocks)
    text = section_texts(blocks)
    assert "[1]" in text
    # Citations link to the help desk's note view with file, heading path and lines.
    assert f"<{HELP_DESK}/notes/k8s-notes.md#L" in text
    assert "k8s-notes.md ›" in text and "行）" in text
    assert "kind: Deployment" in text and "```" in text
    actions = [b for b in blocks if b["type"] == "actions"][0]["elements"]
    assert {a["action_id"] for a in actions} == {VOTE_UP, VOTE_DOWN}
    assert fake.of("auth.test"), "bolt identifies the bot once with auth.test"


def test_a_follow_up_in_the_thread_is_answered_with_its_history(
    slack: SlackSender, fake: FakeSlack
) -> None:
    _, first = slack.user_says(CHANNEL, f"<@{BOT_USER}> StatefulSet 适合什么场景？", mention=True)
    final_reply(fake, CHANNEL)
    fake.reset()
    # No mention: the bot answered in this thread, so it takes the follow-up.
    r, _ = slack.user_says(CHANNEL, "那 DaemonSet 呢？", thread_ts=first["ts"])
    assert r.status_code == 200
    reply = final_reply(fake, CHANNEL)
    assert reply["posted"]["thread_ts"] == first["ts"]
    assert fake.of("conversations.replies")[0].params["ts"] == first["ts"]
    text = section_texts(reply["update"]["blocks"])
    assert "DaemonSet" in text  # the rewritten query, shown above the answer
    assert "› DaemonSet（第" in text  # the cited section


def test_a_reply_in_a_thread_the_bot_is_not_in_is_left_alone(
    slack: SlackSender, fake: FakeSlack
) -> None:
    _, parent = slack.user_says(CHANNEL, "大家午饭吃什么？")
    slack.user_says(CHANNEL, "Pod 是什么？", thread_ts=parent["ts"])
    fake.wait_for("conversations.replies")
    time.sleep(1)
    assert not fake.of("chat.postMessage")


def test_a_direct_message_is_answered_in_the_dm(slack: SlackSender, fake: FakeSlack) -> None:
    slack.user_says("D0ALICE", "Secret 用来存什么？", channel_type="im")
    reply = final_reply(fake, "D0ALICE")
    assert reply["posted"]["channel"] == "D0ALICE"
    assert not reply["posted"].get("thread_ts")
    assert "敏感信息" in section_texts(reply["update"]["blocks"])


def test_a_retried_event_is_answered_once_even_while_the_first_is_running(
    slack: SlackSender, fake: FakeSlack
) -> None:
    event_id = "Ev0RETRIED1"
    r1, asked = slack.user_says(CHANNEL, f"<@{BOT_USER}> Ingress 是什么？", mention=True,
                                event_id=event_id)
    # Slack re-sends the same event at once, as if our acknowledgement had been lost.
    event = {"type": "app_mention", "user": "U0ALICE", "text": asked["text"],
             "ts": asked["ts"], "channel": CHANNEL}
    r2, _ = slack.event(event, event_id=event_id, retry=1)
    r3, _ = slack.event(event, event_id=event_id, retry=2)
    assert r1.status_code == r2.status_code == r3.status_code == 200
    fake.wait_for("chat.update")
    time.sleep(1)
    assert len(fake.of("chat.postMessage")) == 1
    assert len(fake.of("chat.update")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Signature": "v0=" + "0" * 64},  # wrong
        {"X-Slack-Signature": ""},  # missing
        sign(SECRET, "{}", timestamp=int(time.time()) - 6 * 60),  # stale: 6 minutes old
    ],
    ids=["wrong", "missing", "stale"],
)
def test_a_bad_or_stale_signature_gets_401_and_no_reply(
    slack: SlackSender, fake: FakeSlack, headers: dict[str, str]
) -> None:
    event = {"type": "app_mention", "user": "U0ALICE", "text": f"<@{BOT_USER}> Pod 是什么？",
             "ts": fake.next_ts(), "channel": CHANNEL}
    body = json.dumps({"type": "event_callback", "event_id": "Ev0FORGED", "team_id": "T0TEAM",
                       "event": event})
    good = sign(SECRET, body)
    sent = {"Content-Type": "application/json", **good, **headers}
    if "X-Slack-Request-Timestamp" in headers:  # the stale case: old timestamp, valid HMAC
        sent = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()) - 360)}
    r = httpx.post(slack.url, content=body, headers=sent, timeout=10)
    assert r.status_code == 401
    time.sleep(0.5)
    assert not fake.of("chat.postMessage")


def test_its_own_and_other_bots_messages_and_edits_are_ignored(
    slack: SlackSender, fake: FakeSlack
) -> None:
    _, first = slack.user_says(CHANNEL, f"<@{BOT_USER}> Job 是什么？", mention=True)
    final_reply(fake, CHANNEL)
    fake.reset()
    thread = first["ts"]
    base = {"type": "message", "channel": CHANNEL, "channel_type": "channel",
            "thread_ts": thread}
    slack.event({**base, "user": BOT_USER, "bot_id": "BNOTESQA", "text": "回答", "ts": "1.1"})
    slack.event({**base, "bot_id": "B0OTHER", "subtype": "bot_message", "text": "Pod？",
                 "ts": "1.2"})
    slack.event({**base, "subtype": "message_changed", "ts": "1.3",
                 "message": {"text": "Pod 是什么？", "user": "U0ALICE", "ts": "1.0"}})
    slack.event({**base, "subtype": "message_deleted", "ts": "1.4", "deleted_ts": "1.0"})
    time.sleep(1.5)
    assert not fake.of("chat.postMessage")


def test_slash_command_answers_privately_with_a_button_to_share(
    slack: SlackSender, fake: FakeSlack
) -> None:
    started = time.monotonic()
    r = slack.command("Ingress 和 Service 有什么区别？")
    assert r.status_code == 200 and time.monotonic() - started < 3
    ephemeral = fake.wait_for("chat.postEphemeral")[0].params
    assert ephemeral["channel"] == CHANNEL and ephemeral["user"] == "U0ALICE"
    blocks = json.loads(ephemeral["blocks"]) if isinstance(ephemeral["blocks"], str) \
        else ephemeral["blocks"]
    share = next(e for b in blocks if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"] == SHARE)
    assert json.loads(share["value"])["q"] == "Ingress 和 Service 有什么区别？"

    slack.click({"action_id": SHARE, "block_id": "notesqa_actions", "value": share["value"]},
                channel=CHANNEL, ephemeral=True)
    shared = fake.wait_for("chat.postMessage")[0].params
    assert shared["channel"] == CHANNEL and not shared.get("thread_ts")
    assert "<@U0ALICE> 问：Ingress 和 Service 有什么区别？" in section_texts(shared["blocks"])
    # The private copy is removed through the response URL.
    assert fake.wait_for("response_url")[0].params.get("delete_original") is True


def test_a_feedback_click_is_stored_and_acknowledged(
    slack: SlackSender, fake: FakeSlack, work: Path
) -> None:
    slack.user_says(CHANNEL, f"<@{BOT_USER}> ConfigMap 存什么数据？", mention=True)
    reply = final_reply(fake, CHANNEL)
    message = fake.message(CHANNEL, reply["update"]["ts"])
    down = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == VOTE_DOWN)
    r = slack.click({"action_id": VOTE_DOWN, "block_id": "notesqa_actions",
                     "value": down["value"]}, channel=CHANNEL, user="U0BOB", message=message)
    assert r.status_code == 200
    ack = fake.wait_for("chat.update", count=2)[1].params
    assert ack["ts"] == message["ts"]
    assert "感谢反馈（<@U0BOB> 👎）· 👍 0 · 👎 1" in section_texts(ack["blocks"])
    with sqlite3.connect(work / "feedback.sqlite3") as db:
        row = db.execute(
            "SELECT a.question, a.rewritten_query, a.answer, a.citations, a.source, "
            "v.user_id, v.channel_id, v.vote, v.ts FROM votes v JOIN asks a ON a.id = v.ask_id "
            "WHERE v.ask_id = ?", (down["value"],),
        ).fetchone()
    question, rewritten, answer, citations, source, user, channel, vote, ts = row
    assert question == rewritten == "ConfigMap 存什么数据？"
    assert "[1]" in answer and json.loads(citations)[0]["source"]
    assert (source, user, channel, vote) == ("slack", "U0BOB", CHANNEL, -1)
    assert abs(ts - time.time()) < 60


def test_a_long_manifest_is_split_within_slacks_limits(
    slack: SlackSender, fake: FakeSlack
) -> None:
    assert len(LONG_CONFIGMAP) > 2 * MAX_SECTION_CHARS
    slack.user_says(CHANNEL, f"<@{BOT_USER}> 给我一个 ConfigMap 的 YAML 示例", mention=True)
    blocks = final_reply(fake, CHANNEL)["update"]["blocks"]
    within_slack_limits(blocks)
    pieces = [b["text"]["text"] for b in blocks
              if b["type"] == "section" and b["text"]["text"].startswith("```")]
    assert len(pieces) >= 3
    assert all(p.endswith("```") for p in pieces)
    # Split between lines, nothing lost: the pieces put back together are the manifest's
    # first lines, and what does not fit is linked in full.
    joined = "\n".join(p.removeprefix("```\n").removesuffix("\n```") for p in pieces)
    manifest = LONG_CONFIGMAP.split("```yaml\n")[1].split("\n```")[0]
    assert manifest.startswith(joined + "\n")
    text = section_texts(blocks)
    assert "示例较长" in text and f"<{HELP_DESK}/notes/nginx-configmap.md#L" in text


def test_a_rate_limited_post_is_retried(slack: SlackSender, fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=1)
    slack.user_says(CHANNEL, f"<@{BOT_USER}> Namespace 有什么用？", mention=True)
    posts = fake.wait_for("chat.postMessage", count=2)
    assert len(posts) == 2  # the 429, then the retry after Retry-After
    assert posts[1].at - posts[0].at >= 0.9
    assert "虚拟集群" in section_texts(fake.wait_for("chat.update")[0].params["blocks"])


def test_slack_errors_are_logged_and_do_not_stop_the_service(
    slack: SlackSender, fake: FakeSlack, server: str
) -> None:
    fake.fail("chat.postMessage", error="channel_not_found")
    slack.user_says("C0GONE", f"<@{BOT_USER}> Pod 是什么？", mention=True)
    fake.wait_for("chat.postMessage")
    fake.fail("chat.postMessage", status=500, times=3)  # beyond the retries
    slack.user_says(CHANNEL, f"<@{BOT_USER}> Pod 是什么？", mention=True)
    fake.wait_for("chat.postMessage", count=4)
    # A malformed (but correctly signed) payload is refused, not a 500.
    r = slack.post("payload=%7Bnot-json", "application/x-www-form-urlencoded")
    assert 400 <= r.status_code < 500
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200
    fake.reset()
    slack.user_says(CHANNEL, f"<@{BOT_USER}> Pod 是什么？", mention=True)
    assert "最小" in section_texts(final_reply(fake, CHANNEL)["update"]["blocks"])


def test_socket_mode_answers_over_a_websocket(
    server: str, fake: FakeSlack, work: Path
) -> None:
    """`notesqa slack` against a local WebSocket standing in for Slack's Socket Mode: it
    opens the socket through apps.connections.open, acknowledges the envelope and answers
    through the Web API, like the HTTP mode."""
    fake.reset()
    with FakeSocketMode() as socket:
        fake.socket_url = socket.url
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_APP_TOKEN": "xapp-test-token",
            "NOTESQA_SLACK_API_URL": fake.api_url,
            "NOTESQA_INDEX_DIR": str(work / "index"),
            "NOTESQA_FEEDBACK_DB": str(work / "feedback.sqlite3"),
            "NOTESQA_CACHE_DIR": str(cache_root()),
        }
        env.pop("SLACK_SIGNING_SECRET", None)
        log = (work / "socket.log").open("w")
        proc = subprocess.Popen([str(NOTESQA), "slack"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            assert socket.connected.wait(120), (work / "socket.log").read_text()
            ts = fake.next_ts()
            fake.add_message(CHANNEL, {"type": "message", "user": "U0ALICE", "ts": ts,
                                       "text": f"<@{BOT_USER}> CronJob 是什么？"})
            socket.send({
                "envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False,
                "retry_attempt": 0, "retry_reason": "",
                "payload": {"type": "event_callback", "event_id": "Ev0SOCKET1",
                            "team_id": "T0TEAM", "api_app_id": "A0NOTESQA",
                            "event": {"type": "app_mention", "user": "U0ALICE",
                                      "text": f"<@{BOT_USER}> CronJob 是什么？", "ts": ts,
                                      "channel": CHANNEL}},
            })
            update = fake.wait_for("chat.update", timeout=60)[0].params
            assert "周期性任务" in section_texts(update["blocks"])
            assert fake.of("chat.postMessage")[0].params["thread_ts"] == ts
            assert {"envelope_id": "env-1"} in socket.acks
            assert fake.of("apps.connections.open")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def test_the_bot_calls_only_methods_its_manifest_scopes_allow(fake: FakeSlack) -> None:
    # Runs last in this module: by now every path above has talked to the fake.
    socket_only = {"apps.connections.open"}  # authorised by the app-level token
    assert fake.methods_seen - socket_only <= set(WEB_API_SCOPES), fake.methods_seen
    assert {"chat.postMessage", "chat.update", "conversations.replies"} <= fake.methods_seen
