"""The Slack bot (slack-bolt), answering from the same `ServiceState` as `/ask`.

Where it answers:
- an @mention in a channel: in a thread under that message;
- a direct message: in the DM (in its thread, when the message is a thread reply);
- a reply in a channel thread where the bot has already answered, mention or not: with the
  thread's earlier turns as history (`conversations.replies`);
- `/ask 问题`: an answer only the asker sees, with a button to post it to the channel.

Bolt acknowledges events before the listener runs and the listeners acknowledge commands
and clicks first, so Slack always hears back within its 3 seconds; the answer follows as a
"正在查找…" placeholder that is updated in place.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from service.feedback import Vote
from service.followup import Turn
from service.schemas import MAX_QUESTION_CHARS
from service.slack.blocks import (
    SHARE,
    VOTE_DOWN,
    VOTE_UP,
    Message,
    notice,
    placeholder,
    render,
    with_tally,
)
from service.state import NotReadyError, ServiceState

log = logging.getLogger("notesqa.slack")

HISTORY_TURNS = 10  # earlier thread messages passed on as history
HISTORY_TURN_CHARS = 2000
THREAD_PAGE = 200  # conversations.replies page size (Slack's maximum is 1,000)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
COMMAND = "/ask"
# The Web API methods the bot calls and the bot scopes each needs (slack/manifest.yaml
# grants exactly these, plus app_mentions:read and commands for what Slack sends us).
WEB_API_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.replies": ("channels:history", "groups:history", "im:history"),
    "auth.test": (),
}
USAGE = "请在 @我 之后写上问题，例如：@notes-qa Ingress 和 Service 有什么区别？"


class EventLedger:
    """Event ids already taken, so an event Slack sends again (`X-Slack-Retry-Num`) is
    answered once, also while the first delivery is still being answered. Bounded: ids
    are forgotten after `ttl_s` (Slack stops retrying after about an hour)."""

    def __init__(self, ttl_s: float = 3600.0, max_size: int = 20_000):
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._ttl_s = ttl_s
        self._max_size = max_size

    def claim(self, event_id: str) -> bool:
        """True the first time `event_id` is seen."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._max_size
                or now - next(iter(self._seen.values())) > self._ttl_s
            ):
                self._seen.popitem(last=False)
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            return True


def question_of(text: str) -> str:
    """The message without mentions of the bot (or anyone): what is being asked."""
    return re.sub(r"\s+", " ", _MENTION.sub(" ", text)).strip()


def web_client(token: str, base_url: str) -> WebClient:
    """Slack's Web API client, retrying rate limits (after `Retry-After`), 5xx and
    dropped connections instead of losing the reply."""
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=15,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackBot:
    """The bolt `App` and its listeners, over one `ServiceState`."""

    def __init__(self, state: ServiceState, *, socket_mode: bool = False):
        settings = state.settings
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        if not socket_mode and settings.slack_signing_secret is None:
            raise ValueError("SLACK_SIGNING_SECRET is not set")
        self.state = state
        self.base_url = settings.public_url
        self.channels = frozenset(settings.slack_channels)
        self.ledger = EventLedger()
        self.app = App(
            client=web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url),
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret else ""
            ),
            # Socket Mode messages are not signed: the app token authenticates the socket.
            request_verification_enabled=not socket_mode,
            # auth.test runs on the first request instead, so start-up needs no network.
            token_verification_enabled=False,
            logger=log,
        )
        self._register()

    def _register(self) -> None:
        app = self.app
        app.middleware(self._once)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.command(COMMAND)(self._on_command)
        app.action(VOTE_UP)(self._on_vote)
        app.action(VOTE_DOWN)(self._on_vote)
        app.action(SHARE)(self._on_share)
        app.error(self._on_error)

    def _count(self, kind: str, outcome: str) -> None:
        self.state.metrics.slack_events.labels(kind, outcome).inc()

    # -- middleware -------------------------------------------------------------------

    def _once(self, body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        event_id = body.get("event_id")
        if body.get("type") == "event_callback" and event_id and not self.ledger.claim(event_id):
            log.info("Slack 重发的事件 %s 已处理过，忽略", event_id)
            self._count(body.get("event", {}).get("type", "unknown"), "duplicate")
            return BoltResponse(status=200, body="")
        next()
        return None

    def _allowed(self, channel: str | None) -> bool:
        return not self.channels or channel in self.channels

    # -- events ------------------------------------------------------------------------

    def _on_mention(self, event: dict[str, Any], client: WebClient, context: Any) -> None:
        channel = event.get("channel")
        if event.get("bot_id") or event.get("subtype") or not self._allowed(channel):
            self._count("app_mention", "ignored")
            return
        thread_ts = event.get("thread_ts") or event["ts"]
        history: list[Turn] = []
        if event.get("thread_ts"):
            history, _ = self._thread(client, channel, event["thread_ts"], event["ts"], context)
        self._reply(client, event, channel, thread_ts, history)
        self._count("app_mention", "answered")

    def _on_message(self, event: dict[str, Any], client: WebClient, context: Any) -> None:
        # Edits, deletions, joins and other bots' posts arrive as subtypes or with a bot_id.
        if event.get("subtype") or event.get("bot_id") or event.get("user") == context.bot_user_id:
            self._count("message", "ignored")
            return
        channel = event.get("channel")
        thread_ts = event.get("thread_ts")
        if event.get("channel_type") == "im":
            history: list[Turn] = []
            if thread_ts:
                history, _ = self._thread(client, channel, thread_ts, event["ts"], context)
            self._reply(client, event, channel, thread_ts, history)
            self._count("message", "answered")
            return
        # In channels only a follow-up in a thread the bot answered in, and only when it does
        # not mention the bot (then app_mention answers it).
        mentioned = context.bot_user_id and f"<@{context.bot_user_id}" in event.get("text", "")
        if not thread_ts or thread_ts == event["ts"] or mentioned or not self._allowed(channel):
            self._count("message", "ignored")
            return
        history, answered_here = self._thread(client, channel, thread_ts, event["ts"], context)
        if not answered_here:
            self._count("message", "ignored")
            return
        self._reply(client, event, channel, thread_ts, history)
        self._count("message", "answered")

    def _thread(
        self, client: WebClient, channel: str | None, thread_ts: str, current_ts: str,
        context: Any,
    ) -> tuple[list[Turn], bool]:
        """The thread's turns before `current_ts`, and whether the bot has answered in it."""
        try:
            page = client.conversations_replies(channel=channel or "", ts=thread_ts,
                                                limit=THREAD_PAGE)
        except SlackApiError as exc:
            log.warning("读取话题 %s 失败：%s", thread_ts, exc.response.get("error"))
            return [], False
        turns: list[Turn] = []
        answered = False
        for message in page.get("messages") or []:
            if message.get("ts") == current_ts:
                break
            by_bot = message.get("user") == context.bot_user_id or (
                message.get("bot_id") is not None and message.get("bot_id") == context.bot_id
            )
            text = message.get("text") or ""
            if by_bot:
                if text == placeholder().text:
                    continue
                answered = True
                turns.append(Turn("assistant", text[:HISTORY_TURN_CHARS]))
            elif not message.get("bot_id") and not message.get("subtype"):
                turns.append(Turn("user", question_of(text)[:HISTORY_TURN_CHARS]))
        return turns[-HISTORY_TURNS:], answered

    def _reply(
        self, client: WebClient, event: dict[str, Any], channel: str | None,
        thread_ts: str | None, history: list[Turn],
    ) -> None:
        """Post "正在查找…", answer, and put the answer in its place."""
        question = question_of(event.get("text") or "")
        try:
            posted = client.chat_postMessage(
                channel=channel or "", thread_ts=thread_ts, text=placeholder().text,
                blocks=placeholder().blocks,
            )
        except SlackApiError as exc:
            log.error("无法在 %s 回复：%s", channel, exc.response.get("error"))
            return
        message = self._answer(question, history, event.get("user"), channel)
        try:
            client.chat_update(
                channel=posted["channel"], ts=posted["ts"], text=message.text,
                blocks=message.blocks,
            )
        except SlackApiError as exc:
            log.error("无法更新回复 %s：%s", posted["ts"], exc.response.get("error"))

    def _answer(
        self, question: str, history: list[Turn], user: str | None, channel: str | None,
        *, asker: str | None = None, shareable: bool = False, ask_id: str | None = None,
    ) -> Message:
        if not question:
            return notice(USAGE)
        if len(question) > MAX_QUESTION_CHARS:
            return notice(f"问题太长：{len(question)} 个字符，最多 {MAX_QUESTION_CHARS} 个。")
        try:
            response = self.state.answer(
                question, history=history, source="slack", user_id=user, channel_id=channel,
                record=ask_id is None,
            )
        except NotReadyError as exc:
            return notice(f"服务尚未就绪：{exc}。请稍后再试。")
        except Exception:
            log.exception("回答 Slack 问题时出错")
            return notice("出错了，没能回答这个问题。错误已记录，请稍后再试。")
        if ask_id is not None:
            response.id = ask_id
        return render(response, base_url=self.base_url, asker=asker, shareable=shareable)

    # -- slash command and buttons ----------------------------------------------------------

    def _on_command(
        self, ack: Callable[..., None], command: dict[str, Any], client: WebClient,
        respond: Callable[..., Any],
    ) -> None:
        question = question_of(command.get("text") or "")
        channel, user = command.get("channel_id"), command.get("user_id")
        if not question:
            ack(text="用法：/ask 问题，例如 /ask Ingress 和 Service 有什么区别？")
            self._count("command", "ignored")
            return
        if not self._allowed(channel):
            ack(text="这个频道没有开启 notes-qa。")
            self._count("command", "ignored")
            return
        ack()
        message = self._answer(question, [], user, channel, shareable=True)
        try:
            client.chat_postEphemeral(
                channel=channel or "", user=user or "", text=message.text, blocks=message.blocks
            )
        except SlackApiError as exc:
            # Not a member of the channel (or a DM with someone else): the response URL
            # reaches the asker anywhere.
            log.info("chat.postEphemeral 失败（%s），改用 response_url", exc.response.get("error"))
            respond(text=message.text, blocks=message.blocks, response_type="ephemeral",
                    replace_original=False)
        self._count("command", "answered")

    def _on_vote(
        self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
        client: WebClient, respond: Callable[..., Any],
    ) -> None:
        ack()
        vote: Vote = 1 if action.get("action_id") == VOTE_UP else -1
        user = (body.get("user") or {}).get("id") or "unknown"
        channel = (body.get("channel") or {}).get("id")
        tally = self.state.feedback.vote(str(action.get("value")), vote, user, "slack", channel)
        if tally is None:
            respond(text="这条回答的记录已不在（超过保留期或未开启记录），反馈没有保存。",
                    response_type="ephemeral", replace_original=False)
            self._count("vote", "unknown_answer")
            return
        original = body.get("message") or {}
        if not original.get("blocks"):
            respond(text=f"已记录你的反馈：{'👍' if vote > 0 else '👎'}，谢谢！",
                    response_type="ephemeral", replace_original=False)
        else:
            blocks = with_tally(original["blocks"], tally.up, tally.down, user, vote)
            text = original.get("text") or "notes-qa"
            if (body.get("container") or {}).get("is_ephemeral"):
                respond(text=text, blocks=blocks, replace_original=True)
            else:
                try:
                    client.chat_update(channel=channel or "", ts=original["ts"], text=text,
                                       blocks=blocks)
                except SlackApiError as exc:
                    log.error("无法更新反馈：%s", exc.response.get("error"))
        self._count("vote", "stored")

    def _on_share(
        self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
        client: WebClient, respond: Callable[..., Any],
    ) -> None:
        ack()
        user = (body.get("user") or {}).get("id")
        channel = (body.get("channel") or {}).get("id")
        share = json.loads(action.get("value") or "{}")
        message = self._answer(
            str(share.get("q", "")), [], user, channel, asker=user, ask_id=share.get("id")
        )
        try:
            client.chat_postMessage(channel=channel or "", text=message.text,
                                    blocks=message.blocks)
        except SlackApiError as exc:
            respond(text=f"没能发到频道：{exc.response.get('error')}。请先把 notes-qa 加入频道。",
                    response_type="ephemeral", replace_original=False)
            return
        respond(delete_original=True)
        self._count("share", "posted")

    def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("处理 Slack 请求出错（%s）：%s", body.get("type"), error, exc_info=error)
        self._count(str(body.get("type", "unknown")), "error")
