"""A fake of Slack: a real HTTP server on loopback speaking the Web API methods the bot
uses, and a client that sends the service correctly signed events, commands and clicks
the way Slack does. Also a WebSocket server standing in for Socket Mode.

    python -m tests.slack_fake --port 3001    # serve the fake Web API until Ctrl+C

The Web API fake keeps channels and threads, so `conversations.replies` sees what the bot
posted, and it can be told to fail (`fail("chat.postMessage", status=429)`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

BOT_USER = "UBOTNOTES"
BOT_ID = "BNOTESQA"
TEAM = "T0TEAM"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class Failure:
    status: int = 200
    error: str | None = None  # Slack's {"ok": false, "error": ...}
    retry_after: int | None = None


class FakeSlack:
    """Slack's Web API on http://127.0.0.1:PORT/api/, recording every call."""

    def __init__(self, port: int = 0) -> None:
        self.calls: list[Call] = []
        self.methods_seen: set[str] = set()  # kept across reset(), for the scope check
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages
        self.failures: dict[str, list[Failure]] = {}
        self.socket_url: str | None = None
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests use ------------------------------------------------------------------

    def fail(self, method: str, times: int = 1, **failure: Any) -> None:
        with self._lock:
            self.failures.setdefault(method, []).extend(Failure(**failure) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.failures.clear()

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 30.0,
        where: Callable[[Call], bool] = lambda c: True,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in self.of(method) if where(c)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"{method}: {len(self.of(method))} calls, wanted {count}; "
                           f"all calls: {[c.method for c in self.calls]}")

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def add_message(self, channel: str, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.setdefault(channel, []).append(message)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._lock:
            return next(m for m in self.messages.get(channel, []) if m["ts"] == ts)

    # -- the Web API ---------------------------------------------------------------------

    def _respond(
        self, method: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.calls.append(Call(method, params))
            self.methods_seen.add(method)
            queued = self.failures.get(method)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            if failure.status == 429:
                return 429, {"ok": False, "error": "ratelimited"}, headers
            if failure.status >= 500:
                return failure.status, {"ok": False, "error": "internal_error"}, headers
            return 200, {"ok": False, "error": failure.error or "unknown_error"}, headers
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "notes-qa",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params["channel"]
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": self.next_ts(),
                   "text": params.get("text", ""), "blocks": _blocks(params)}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.add_message(channel, message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params["channel"]
        with self._lock:
            for m in self.messages.get(channel, []):
                if m["ts"] == params["ts"]:
                    m["text"], m["blocks"] = params.get("text", ""), _blocks(params)
                    return {"ok": True, "channel": channel, "ts": m["ts"], "text": m["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self.next_ts()}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = params["ts"]
        with self._lock:
            found = [dict(m) for m in self.messages.get(params["channel"], [])
                     if m["ts"] == thread or m.get("thread_ts") == thread]
        if not found:
            return {"ok": False, "error": "thread_not_found"}
        found.sort(key=lambda m: float(m["ts"]))
        return {"ok": True, "messages": found, "has_more": False}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": self.socket_url}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                params: dict[str, Any] = dict(parse_qsl(url.query))
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(parse_qsl(raw))
                if url.path.startswith("/response/"):
                    # A response_url: Slack answers "ok" and replaces or deletes the message.
                    with fake._lock:
                        fake.calls.append(Call("response_url", params))
                    self._send(200, {"ok": True}, {})
                    return
                method = url.path.removeprefix("/api/")
                status, body, headers = fake._respond(method, params)
                self._send(status, body, headers)

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        return Handler


def block_texts(blocks: list[dict[str, Any]] | str) -> list[str]:
    """What a reader sees of a message's blocks: section and context texts, in order."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    out: list[str] = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out.extend(e["text"] for e in b["elements"])
    return out


def _blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = params.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


# -- sending to the service as Slack does ------------------------------------------------


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds: `v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class SlackSender:
    """Posts to `/slack/events` what Slack would post, signed with `secret`."""

    def __init__(self, url: str, secret: str, fake: FakeSlack):
        self.url, self.secret, self.fake = url, secret, fake
        self._ids = itertools.count(1)

    def post(self, body: str, content_type: str, headers: dict[str, str] | None = None,
             timestamp: int | None = None) -> httpx.Response:
        sent = {"Content-Type": content_type, **sign(self.secret, body, timestamp),
                **(headers or {})}
        return httpx.post(self.url, content=body.encode("utf-8"), headers=sent, timeout=10)

    def event(self, event: dict[str, Any], event_id: str | None = None,
              retry: int | None = None) -> tuple[httpx.Response, str]:
        """An Events API callback; returns the response and the event id used."""
        event_id = event_id or f"Ev{uuid.uuid4().hex[:12].upper()}"
        envelope = {"token": "unused", "team_id": TEAM, "api_app_id": "A0NOTESQA",
                    "type": "event_callback", "event_id": event_id,
                    "event_time": int(time.time()), "event": event,
                    "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} \
            if retry else None
        return self.post(json.dumps(envelope, ensure_ascii=False), "application/json",
                         headers), event_id

    def user_says(self, channel: str, text: str, *, user: str = "U0ALICE",
                  thread_ts: str | None = None, mention: bool = False,
                  channel_type: str = "channel", event_id: str | None = None,
                  retry: int | None = None) -> tuple[httpx.Response, dict[str, Any]]:
        """A person's message: recorded in the fake's channel (so conversations.replies
        sees it) and delivered as `app_mention` (when it mentions the bot) or `message`.
        Returns the response and the event delivered."""
        ts = self.fake.next_ts()
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts,
                                   "channel": channel, "channel_type": channel_type}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.fake.add_message(channel, {k: v for k, v in message.items()
                                        if k not in ("channel", "channel_type")})
        event = dict(message)
        if mention:
            event = {**message, "type": "app_mention"}
            event.pop("channel_type")
        response, _ = self.event(event, event_id=event_id, retry=retry)
        return response, event

    def command(self, text: str, *, channel: str = "C0GENERAL",
                user: str = "U0ALICE") -> httpx.Response:
        body = urlencode({
            "token": "unused", "team_id": TEAM, "channel_id": channel, "user_id": user,
            "command": "/ask", "text": text, "api_app_id": "A0NOTESQA",
            "response_url": f"{self.fake.base}/response/cmd{next(self._ids)}",
            "trigger_id": "trigger-1",
        })
        return self.post(body, "application/x-www-form-urlencoded")

    def click(self, action: dict[str, Any], *, channel: str, user: str = "U0ALICE",
              message: dict[str, Any] | None = None, ephemeral: bool = False) -> httpx.Response:
        payload: dict[str, Any] = {
            "type": "block_actions", "team": {"id": TEAM}, "user": {"id": user},
            "api_app_id": "A0NOTESQA", "channel": {"id": channel},
            "container": {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral,
                          "message_ts": (message or {}).get("ts", "0")},
            "trigger_id": "trigger-2",
            "response_url": f"{self.fake.base}/response/act{next(self._ids)}",
            "actions": [{**action, "type": "button", "action_ts": str(time.time())}],
        }
        if message is not None:
            payload["message"] = message
        return self.post(urlencode({"payload": json.dumps(payload, ensure_ascii=False)}),
                         "application/x-www-form-urlencoded")


# -- Socket Mode ---------------------------------------------------------------------------


class FakeSocketMode:
    """Slack's Socket Mode end: a WebSocket server on loopback that says hello, sends
    envelopes, and records the acknowledgements the app sends back."""

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._outbox: asyncio.Queue[str] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def send(self, envelope: dict[str, Any]) -> None:
        assert self._outbox is not None
        data = json.dumps(envelope, ensure_ascii=False)
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, data)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import ServerConnection, serve

        self._stop = asyncio.Event()
        self._outbox = asyncio.Queue()

        async def session(ws: ServerConnection) -> None:
            await ws.send(json.dumps({"type": "hello", "num_connections": 1}))
            self.connected.set()

            async def pump() -> None:
                assert self._outbox is not None
                while True:
                    await ws.send(await self._outbox.get())

            sender = asyncio.create_task(pump())
            try:
                async for raw in ws:
                    self.acks.append(json.loads(raw))
            except Exception:  # the client went away
                pass
            finally:
                sender.cancel()

        async with serve(session, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Slack Web API.")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    fake = FakeSlack(args.port)
    print(f"fake Slack Web API: {fake.api_url}  (Ctrl+C to stop)")
    with fake:
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
