"""The FastAPI application, built by `create_app(settings)`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from indexer.embedding import Embedder, load_embedder
from indexer.reading import UndecodableError, decode_note
from indexer.settings import Settings
from indexer.store import IndexNotFoundError, current_build, load_build
from indexer.tokenization import Tokenizer
from service.followup import Turn
from service.glossary import Glossary
from service.qa import QAEngine
from service.rerank import Reranker, load_reranker
from service.schemas import AskRequest, AskResponse

log = logging.getLogger("notesqa")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.asks = Counter(
            "notesqa_asks", "Questions answered", ["mode", "found"], registry=self.registry
        )
        self.latency = Histogram(
            "notesqa_ask_seconds",
            "Time to answer /ask",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


class ServiceState:
    """Everything the app needs at run time; swapped as a whole when a new index appears."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self._embedder = embedder
        self.tokenizer = Tokenizer()
        self.glossary = Glossary.load()
        self.engine: QAEngine | None = None
        self.build: Path | None = None
        self.not_ready_reason: str | None = "索引尚未加载"
        self._lock = threading.Lock()
        self.metrics = Metrics()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(
                self.settings.model, self.settings.cache_dir, self.settings.embed_batch_size
            )
        return self._embedder

    @cached_property
    def reranker(self) -> Reranker | None:
        return load_reranker(self.settings.reranker)

    def load(self) -> None:
        """Load the published index (again, if a newer build was published)."""
        with self._lock:
            build = current_build(self.settings.index_dir)
            if build is None:
                self.not_ready_reason = (
                    f"{self.settings.index_dir} 中没有索引，请先运行 notesqa index"
                )
                return
            if build == self.build and self.engine is not None:
                return
            try:
                index = load_build(build)
            except (IndexNotFoundError, OSError, ValueError, KeyError) as exc:
                # Keep serving the index we have; report why the new one was refused.
                log.error("索引 %s 无法加载：%s", build, exc)
                if self.engine is None:
                    self.not_ready_reason = f"索引无法加载：{exc}"
                return
            if index.manifest.model != self.settings.model:
                reason = (
                    f"索引由模型 {index.manifest.model} 构建，与当前设置 {self.settings.model} "
                    "不一致，请重新运行 notesqa index"
                )
                log.error(reason)
                if self.engine is None:
                    self.not_ready_reason = reason
                return
            engine = QAEngine(
                index, self.embedder, self.tokenizer, self.glossary, self.settings,
                reranker=self.reranker,
            )
            engine.warm_up()
            self.engine, self.build, self.not_ready_reason = engine, build, None
            log.info("已加载索引 %s（%d 个片段）", build.name, len(index.chunks))

    def refresh(self) -> None:
        """Cheap check (one readlink) for a newly published index."""
        build = current_build(self.settings.index_dir)
        if build is not None and build != self.build:
            self.load()


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            msg = "请求体不是合法的 JSON"
        elif error.get("type") == "literal_error" and where == "mode":
            msg = "mode 只能是 hybrid、bm25 或 dense"
        elif error.get("type") == "missing":
            msg = "缺少必填字段"
        parts.append(f"{where}: {msg}" if where else msg)
    return "请求参数有误：" + "；".join(parts)


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServiceState(settings, embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.load()
        yield

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

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"message": "服务内部错误，已记录日志"})

    @app.get("/healthz", summary="进程存活")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="索引已加载")
    def readyz() -> JSONResponse:
        state.refresh()
        if state.engine is None:
            return JSONResponse(
                status_code=503, content={"status": "not ready", "reason": state.not_ready_reason}
            )
        manifest = state.engine.index.manifest
        return JSONResponse(
            content={
                "status": "ready",
                "index": state.build.name if state.build else None,
                "model": manifest.model,
                "files": len(manifest.files),
                "chunks": manifest.chunk_count,
                "yaml_examples": manifest.yaml_count,
                "built_at": manifest.built_at,
            }
        )

    @app.post("/ask", response_model=AskResponse, summary="提问")
    def ask(request: AskRequest) -> AskResponse | JSONResponse:
        state.refresh()
        engine = state.engine
        if engine is None:
            return JSONResponse(
                status_code=503,
                content={"message": f"服务尚未就绪：{state.not_ready_reason}"},
            )
        started = time.perf_counter()
        response = engine.ask(
            request.question,
            top_k=request.top_k,
            mode=request.mode,
            history=[Turn(t.role, t.content) for t in request.history],
        )
        state.metrics.latency.observe(time.perf_counter() - started)
        state.metrics.asks.labels(request.mode, str(response.found).lower()).inc()
        return response

    @app.get("/notes/{path:path}", summary="笔记原文", response_class=PlainTextResponse)
    def note(path: str) -> Response:
        engine = state.engine
        if engine is None:
            return JSONResponse(status_code=503, content={"message": "服务尚未就绪"})
        entry = engine.index.manifest.files.get(path)
        if entry is None:
            return JSONResponse(status_code=404, content={"message": f"没有这篇笔记：{path}"})
        file = Path(entry.file).resolve()
        root = Path(entry.root).resolve()
        # Only files inside a corpus root, whatever the manifest or a symlink says.
        if not file.is_relative_to(root) or not file.is_file():
            return JSONResponse(status_code=404, content={"message": f"没有这篇笔记：{path}"})
        try:
            text, _ = decode_note(file.read_bytes())
        except (OSError, UndecodableError) as exc:
            return JSONResponse(status_code=404, content={"message": f"无法读取笔记：{exc}"})
        return PlainTextResponse(text)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
