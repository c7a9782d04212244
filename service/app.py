"""The FastAPI application, built by `create_app(settings)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.embedding import Embedder
from indexer.settings import Settings
from service import notes, web
from service.followup import Turn
from service.middleware import ApiKeys, BodyLimit, RateLimit, RequestContext
from service.reload import IndexWatcher
from service.schemas import AskRequest, AskResponse, FeedbackRequest, FeedbackResponse
from service.slack import http as slack_http
from service.state import NotReadyError, ServiceState

log = logging.getLogger("notesqa")


_HTTP_MESSAGES = {
    400: "请求体无法解析：需要 UTF-8 编码的 JSON",
    404: "没有这个地址",
    405: "不支持这个请求方法",
}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            msg = "请求体不是合法的 JSON"
        elif error.get("type") == "literal_error" and where == "mode":
            msg = "mode 只能是 hybrid、bm25 或 dense"
        elif error.get("type") == "literal_error" and where == "vote":
            msg = "vote 只能是 up 或 down"
        elif error.get("type") == "missing":
            msg = "缺少必填字段"
        parts.append(f"{where}: {msg}" if where else msg)
    return "请求参数有误：" + "；".join(parts)


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServiceState(settings, embedder)

    watcher = IndexWatcher(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.reload)
        watcher.start()
        yield
        await run_in_threadpool(watcher.stop)

    app = FastAPI(
        title="notes-qa",
        description="基于团队笔记的问答服务：每句回答都带有出处（文件、标题、行号）。",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.notesqa = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "message": _validation_message(exc),
                "detail": [
                    {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                    for e in exc.errors()
                ],
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own errors (unknown path, wrong method, a body that is not UTF-8
        # JSON) in the same shape and language as ours.
        message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
        return JSONResponse(
            status_code=exc.status_code, content={"message": message}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"message": "服务内部错误，已记录日志"})

    @app.get("/healthz", summary="进程存活")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="索引已加载")
    def readyz() -> JSONResponse:
        engine = state.engine
        if engine is None:
            return JSONResponse(
                status_code=503, content={"status": "not ready", "reason": state.not_ready_reason}
            )
        info = engine.backend.info
        return JSONResponse(
            content={
                "status": "ready",
                "index": info.name,
                "backend": info.backend,
                "model": info.model,
                "files": info.files,
                "chunks": info.chunks,
                "yaml_examples": info.yaml_examples,
                "built_at": info.built_at,
                # A newer build that could not be loaded: the one above keeps serving.
                "reload_error": state.reload_error,
            }
        )

    @app.post("/admin/reload", summary="立即检查并加载新发布的索引")
    def reload() -> JSONResponse:
        outcome = state.reload()
        status = 200 if outcome.outcome in ("loaded", "unchanged") else 503
        return JSONResponse(
            status_code=status,
            content={"outcome": outcome.outcome, "index": outcome.build, "reason": outcome.reason},
        )

    @app.post("/ask", response_model=AskResponse, summary="提问")
    def ask(request: AskRequest) -> AskResponse | JSONResponse:
        try:
            return state.answer(
                request.question,
                top_k=request.top_k,
                mode=request.mode,
                history=[Turn(t.role, t.content) for t in request.history],
                source=request.client,
            )
        except NotReadyError as exc:
            return JSONResponse(status_code=503, content={"message": f"服务尚未就绪：{exc}"})

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        summary="对回答投票（👍/👎）",
        responses={404: {"description": "没有这条回答"}, 503: {"description": "未开启记录"}},
    )
    def feedback(request: FeedbackRequest) -> FeedbackResponse | JSONResponse:
        if not state.feedback.enabled:
            return JSONResponse(
                status_code=503,
                content={"message": "未保存问答记录（NOTESQA_RETENTION_DAYS=0），无法记录反馈"},
            )
        tally = state.feedback.vote(
            request.id, 1 if request.vote == "up" else -1, request.user or "anonymous", "web"
        )
        if tally is None:
            return JSONResponse(
                status_code=404,
                content={"message": f"没有这条回答：{request.id}（可能已超过保留期）"},
            )
        return FeedbackResponse(id=request.id, vote=request.vote, up=tally.up, down=tally.down)

    if settings.metrics:

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(
                generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST
            )

    app.include_router(notes.router(state))
    app.include_router(web.router(state))
    app.include_router(slack_http.router(state))

    # Added last = runs first: ids and logs see every request, CORS answers preflights
    # before keys are asked for, and the body limit applies before anything reads a body.
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(ApiKeys, keys=[k.get_secret_value() for k in settings.api_keys])
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestContext, metrics=state.metrics)
    return app
