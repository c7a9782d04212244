#!/usr/bin/env python
"""The Slack bot without a Slack workspace: starts the fake Slack Web API (tests/slack_fake.py)
and the real service pointed at it, then plays one @mention, one follow-up in the thread
and one 👎 click, printing what went in and which Web API calls came out.

    .venv/bin/python scripts/slack_demo.py            # transcript on stdout
    .venv/bin/python scripts/slack_demo.py --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import notesqa_server  # noqa: E402
from tests.slack_fake import BOT_USER, FakeSlack, SlackSender, block_texts  # noqa: E402

SECRET = "demo-signing-secret"
CHANNEL = "C0GENERAL"


def summary(params: dict[str, Any]) -> dict[str, Any]:
    """A call's parameters with blocks reduced to their text, for reading."""
    out = {k: v for k, v in params.items() if k not in ("blocks", "token")}
    blocks = params.get("blocks")
    if blocks:
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        out["blocks"] = block_texts(blocks) + [
            "[buttons] " + " ".join(f"{e['text']['text']}({e['action_id']})"
                                   for e in b["elements"])
            for b in blocks if b["type"] == "actions"
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    steps: list[dict[str, Any]] = []

    with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
        env = {"SLACK_BOT_TOKEN": "xoxb-demo", "SLACK_SIGNING_SECRET": SECRET,
               "NOTESQA_SLACK_API_URL": fake.api_url,
               "NOTESQA_PUBLIC_URL": "https://notes-qa.example.com"}
        with notesqa_server(Path(tmp), env=env) as base:
            slack = SlackSender(f"{base}/slack/events", SECRET, fake)

            def play(title: str, send: Any, waits: list[tuple[str, int]]) -> Any:
                fake.reset()
                started = time.perf_counter()
                response, sent = send()
                ack_ms = (time.perf_counter() - started) * 1000
                for method, count in waits:
                    fake.wait_for(method, count)
                time.sleep(0.3)
                steps.append({
                    "step": title,
                    "in": sent,
                    "http_response": {"status": response.status_code,
                                      "ms": round(ack_ms, 1)},
                    "out": [{"method": c.method, "params": summary(c.params)}
                            for c in fake.calls],
                })
                return sent

            question = play(
                "1. @mention in a channel",
                lambda: slack.user_says(CHANNEL, f"<@{BOT_USER}> StatefulSet 适合什么场景？",
                                        mention=True),
                [("chat.update", 1)],
            )
            play(
                "2. follow-up in the thread, no mention",
                lambda: slack.user_says(CHANNEL, "那 DaemonSet 呢？",
                                        thread_ts=question["ts"]),
                [("chat.update", 1)],
            )
            answer = fake.message(CHANNEL, fake.of("chat.update")[0].params["ts"])
            down = next(e for b in answer["blocks"] if b["type"] == "actions"
                        for e in b["elements"] if e["action_id"] == "notesqa_vote_down")

            def click() -> tuple[Any, dict[str, Any]]:
                action = {"action_id": down["action_id"], "block_id": "notesqa_actions",
                          "value": down["value"]}
                return slack.click(action, channel=CHANNEL, user="U0BOB",
                                   message=answer), {"block_actions": action, "user": "U0BOB"}

            play("3. 👎 click on the follow-up's answer", click, [("chat.update", 1)])

    if args.json:
        print(json.dumps(steps, ensure_ascii=False, indent=2))
        return
    for step in steps:
        print(f"== {step['step']}")
        print(f"-> POST /slack/events {json.dumps(step['in'], ensure_ascii=False)}")
        print(f"<- HTTP {step['http_response']['status']} in {step['http_response']['ms']} ms")
        for call in step["out"]:
            print(f"   Web API {call['method']}: "
                  f"{json.dumps(call['params'], ensure_ascii=False)}")
        print()


if __name__ == "__main__":
    main()
