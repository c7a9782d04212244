"""`POST /slack/events`: Slack's Events API, slash commands and button clicks on one URL."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from slack_bolt import BoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from service.slack.bot import SlackBot
from service.state import ServiceState

log = logging.getLogger("notesqa.slack")

MAX_BODY_BYTES = 1_000_000  # Slack's payloads are a few KB; a larger body is not Slack


def router(state: ServiceState) -> APIRouter:
    routes = APIRouter()
    settings = state.settings
    bot, verifier = None, None
    if settings.slack_bot_token is not None and settings.slack_signing_secret is not None:
        bot = SlackBot(state)
        verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())

    @routes.post("/slack/events", summary="Slack 事件、斜杠命令与按钮（需 Slack 签名）")
    async def events(request: Request) -> Response:
        if bot is None or verifier is None:
            return JSONResponse(
                status_code=503,
                content={"message": "Slack 机器人未配置：请设置 SLACK_BOT_TOKEN 和 "
                         "SLACK_SIGNING_SECRET 后重启服务"},
            )
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse(status_code=413, content={"message": "请求体太大"})
        text = body.decode("utf-8", errors="replace")
        headers = dict(request.headers.items())
        # Checked before parsing, so a forged body is a 401 whatever it holds (bolt checks
        # again; the HMAC costs microseconds).
        if not verifier.is_valid_request(text, headers):
            return JSONResponse(status_code=401, content={"message": "Slack 签名无效或已过期"})
        try:
            bolt_request = BoltRequest(body=text, query=request.url.query, headers={**headers})
            # dispatch blocks (auth.test once, then until the ack): off the event loop.
            answer = await run_in_threadpool(bot.app.dispatch, bolt_request)
        except Exception:
            log.exception("无法处理的 Slack 请求")
            return JSONResponse(status_code=400, content={"message": "无法解析的 Slack 请求"})
        return Response(
            status_code=answer.status,
            content=answer.body,
            headers=answer.first_headers_without_set_cookie(),
        )

    return routes
