"""The Slack app manifest a workspace admin pastes matches what the bot handles."""

from __future__ import annotations

import yaml

from service.slack.bot import COMMAND, WEB_API_SCOPES
from tests.conftest import ROOT

MANIFEST = yaml.safe_load((ROOT / "slack" / "manifest.yaml").read_text("utf-8"))


def test_every_url_is_the_events_endpoint() -> None:
    settings = MANIFEST["settings"]
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in MANIFEST["features"]["slash_commands"]),
    ]
    assert all(u.startswith("https://") and u.endswith("/slack/events") for u in urls)
    assert settings["interactivity"]["is_enabled"] is True


def test_the_slash_command_is_the_one_the_bot_listens_to() -> None:
    assert [c["command"] for c in MANIFEST["features"]["slash_commands"]] == [COMMAND]


def test_events_cover_mentions_dms_and_thread_follow_ups() -> None:
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert events == {"app_mention", "message.channels", "message.groups", "message.im"}


def test_scopes_cover_every_web_api_method_the_bot_calls() -> None:
    granted = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needed = {scope for scopes in WEB_API_SCOPES.values() for scope in scopes}
    assert needed <= granted, needed - granted
    assert {"app_mentions:read", "commands"} <= granted
    # Nothing more than needed: admins approve scopes one by one.
    assert granted == needed | {"app_mentions:read", "commands"}
