"""What every request passes through before an endpoint: its id, access log and metrics;
the body size limit; API keys; the per-client rate limit. Plain ASGI, so a streamed body
is counted as it arrives and nothing is buffered twice."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id
from service.metrics import Metrics

access_log = logging.getLogger("notesqa.access")

# Endpoints that need an API key (when keys are set) and count against the rate limit.
# Health, readiness and metrics stay open for probes and scrapers; Slack is checked by its
# own signature; the page's HTML and assets hold no data.
PROTECTED = ("/ask", "/notes", "/feedback", "/admin")
KEY_COOKIE = "notesqa_key"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


async def _send_json(send: Send, status: int, body: dict[str, str],
                     headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str:
    cookies = SimpleCookie()
    try:
        cookies.load(_header(scope, b"cookie") or "")
    except CookieError:
        return ""
    morsel = cookies.get(name)
    return unquote(morsel.value) if morsel else ""


class RequestContext:
    """Gives each request an id (the caller's `X-Request-ID` when it is sane), returns it
    as `X-Request-ID`, logs one access line and counts the request per endpoint."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            # The route's template, not the raw path: one series per endpoint.
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, endpoint, str(status)).inc()
            self.metrics.request_seconds.labels(method, endpoint).observe(seconds)
            access_log.info(
                "%s %s %d %.1f ms", method, scope["path"], status, seconds * 1000,
                extra={"method": method, "path": scope["path"], "status": status,
                       "ms": round(seconds * 1000, 1)},
            )
            request_id.reset(token)


class BodyLimit:
    """Refuses a body over `limit` bytes with 413 before it is parsed: at once when
    Content-Length says so, else as soon as the streamed body passes the limit (the app
    is then told the client went away, and whatever it answers is dropped)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"message": f"请求体太大：最多 {self.limit} 字节"}
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_json(send, 413, too_large)
            return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await _send_json(send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


class ApiKeys:
    """With keys configured, protected endpoints need `Authorization: Bearer <key>` (or
    the page's same-site cookie); keys are compared in constant time."""

    def __init__(self, app: ASGIApp, keys: Sequence[str]):
        self.app = app
        self.keys = [k.encode() for k in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not _protected(scope["path"]) \
                or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"authorization") or "").encode("latin-1")
        scheme, _, token = given.partition(b" ")
        if not given:
            # The page keeps its key in a same-site cookie too, so links it opens (the note
            # view, the statistics page) are let in like its fetches.
            scheme, token = b"bearer", _cookie(scope, KEY_COOKIE).encode("latin-1")
        # Every key is compared, so timing does not tell how many keys there are or which
        # one came close.
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(token.strip(), key)
        if scheme.lower() != b"bearer" or not ok:
            await _send_json(
                send, 401,
                {"message": "需要有效的 API 密钥：请在请求头中加入 Authorization: Bearer <密钥>"},
                [(b"www-authenticate", b'Bearer realm="notes-qa"')],
            )
            return
        scope.setdefault("state", {})["api_key"] = token.decode("latin-1")
        await self.app(scope, receive, send)


class RateLimit:
    """At most `per_minute` requests to protected endpoints per client (its API key, else
    its address) in any moving minute; beyond it 429 with `Retry-After`."""

    def __init__(self, app: ASGIApp, per_minute: int):
        self.app = app
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope["path"]) \
                or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        key = (scope.get("state") or {}).get("api_key")
        client = "key:" + key if key else "ip:" + ((scope.get("client") or ("?", 0))[0])
        if not self.limiter.hit(self.item, client):
            reset, _ = self.limiter.get_window_stats(self.item, client)
            retry = max(1, int(reset - time.time()) + 1)
            await _send_json(
                send, 429, {"message": f"请求太频繁：请在 {retry} 秒后再试"},
                [(b"retry-after", str(retry).encode())],
            )
            return
        await self.app(scope, receive, send)
