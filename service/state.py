"""What the running service holds: settings, the loaded index's engine, the feedback store,
metrics. The HTTP app, the Slack bot and the CLI's Socket Mode runner share one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from service.milvus_backend import MilvusSource

from indexer.embedding import Embedder, load_embedder, model_id
from indexer.settings import Settings
from indexer.store import IndexNotFoundError, current_build, load_build
from indexer.tokenization import Tokenizer
from service.feedback import AskRecord, FeedbackStore, Source
from service.followup import Turn
from service.glossary import Glossary
from service.metrics import Metrics
from service.qa import QAEngine
from service.rerank import Reranker, load_reranker
from service.retrieval import Mode
from service.schemas import AskResponse
from service.search_backend import BackendUnavailableError, EmbeddedBackend, SearchBackend

log = logging.getLogger("notesqa")


@dataclass(frozen=True)
class ReloadOutcome:
    outcome: Literal["loaded", "unchanged", "failed", "missing"]
    build: str | None
    reason: str | None = None


class ServiceState:
    """Everything the app needs at run time; swapped as a whole when a new index appears."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self._embedder = embedder
        self.tokenizer = Tokenizer()
        self.glossary = Glossary.load()
        self.engine: QAEngine | None = None
        self.build: str | None = None  # what is served: a build folder, a Milvus generation
        self.not_ready_reason: str | None = "索引尚未加载"
        # The newest build that failed to load, and why: not retried until another appears.
        self.failed_build: str | None = None
        self._milvus: MilvusSource | None = None
        self.reload_error: str | None = None
        self._lock = threading.Lock()
        self.metrics = Metrics()
        self.feedback = FeedbackStore(settings.feedback_db, settings.retention_days)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            # numpy's BLAS works on one question's vectors at a time: its threads gain
            # nothing there, and spinning after each product they slowed the model's
            # threads (query embedding 59 ms instead of 24 ms in the server, measured).
            threadpool_limits(limits=1, user_api="blas")
            self._embedder = load_embedder(
                self.settings.model, self.settings.cache_dir, self.settings.embed_batch_size,
                self.settings.embed_backend, self.settings.embed_threads,
            )
        return self._embedder

    @cached_property
    def reranker(self) -> Reranker | None:
        return load_reranker(self.settings.reranker)

    def reload(self) -> ReloadOutcome:
        """Load the published index if it is new: built, warmed and swapped in whole, off the
        request path. Requests in flight keep the engine they started with. A build that
        fails to load is reported once and not tried again until a newer one is published;
        meanwhile the previous index keeps serving."""
        with self._lock:
            try:
                published = self._published()
            except RuntimeError as exc:  # Milvus unreachable (MilvusIndexError)
                published = None
                self.not_ready_reason = str(exc)
            if published is None:
                return ReloadOutcome("missing", None, self.not_ready_reason)
            build, name, load = published
            if build == self.build or build == self.failed_build:
                return ReloadOutcome("unchanged", name, self.reload_error)
            try:
                engine = self._engine_for(load())
            except (IndexNotFoundError, OSError, ValueError, KeyError, RuntimeError) as exc:
                reason = f"索引 {name} 无法加载：{exc}"
                log.error(reason)
                self.failed_build, self.reload_error = build, reason
                self.metrics.reloads.labels("failed").inc()
                if self.engine is None:
                    self.not_ready_reason = reason
                return ReloadOutcome("failed", name, reason)
            # One assignment each: a request reads `engine` once and keeps what it got.
            self.engine, self.build = engine, build
            self.failed_build = self.reload_error = self.not_ready_reason = None
            info = engine.backend.info
            self.metrics.reloads.labels("loaded").inc()
            self.metrics.index_chunks.set(info.chunks)
            self.metrics.index_built.set(_timestamp(info.built_at))
            log.info("已加载索引 %s（%d 个片段）", info.name, info.chunks)
            return ReloadOutcome("loaded", info.name)

    def _published(self) -> tuple[str, str, Callable[[], SearchBackend]] | None:
        """The index to serve now: (identity, name, loader), or None (and why, in
        `not_ready_reason`) when there is none."""
        if self.settings.milvus_uri:
            # Imported here: pymilvus costs the embedded default 1 s and 110 MB.
            from service.milvus_backend import MilvusSource

            if self._milvus is None:
                self._milvus = MilvusSource(self.settings)
            generation = self._milvus.generation()
            if generation is None:
                self.not_ready_reason = self._milvus.missing_reason()
                return None
            return (
                f"milvus:{generation}", self._milvus.name(generation), self._milvus.backend
            )
        build = current_build(self.settings.index_dir)
        if build is None:
            self.not_ready_reason = (
                f"{self.settings.index_dir} 中没有索引，请先运行 notesqa index"
            )
            return None
        return str(build), build.name, lambda: EmbeddedBackend(load_build(build))

    def _engine_for(self, backend: SearchBackend) -> QAEngine:
        wanted = model_id(self.settings.model, self.settings.embed_backend)
        if backend.info.model != wanted:
            raise ValueError(
                f"索引由模型 {backend.info.model} 构建，与当前设置 {wanted} "
                "（NOTESQA_MODEL + NOTESQA_EMBED_BACKEND）不一致，请重新运行 notesqa index"
            )
        engine = QAEngine(
            backend, self.embedder, self.tokenizer, self.glossary, self.settings,
            reranker=self.reranker,
        )
        engine.warm_up()
        return engine

    def answer(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
        source: Source = "api",
        user_id: str | None = None,
        channel_id: str | None = None,
        record: bool = True,
    ) -> AskResponse:
        """Answer on the current index and keep the question as the retention setting allows.
        Every way in (API, page, Slack) comes through here, so all are counted alike.
        `record=False` answers again something already recorded (a shared Slack answer)."""
        engine = self.engine
        if engine is None:
            raise NotReadyError(self.not_ready_reason or "索引尚未加载")
        started = time.perf_counter()
        try:
            response = engine.ask(question, top_k=top_k, mode=mode, history=history)
        except BackendUnavailableError as exc:
            raise NotReadyError(str(exc)) from exc
        self.metrics.latency.observe(time.perf_counter() - started)
        self.metrics.asks.labels(mode, str(response.found).lower()).inc()
        self.metrics.observe_stages(response.timings_ms)
        entry = AskRecord(
            question=question,
            rewritten_query=response.rewritten_query,
            found=response.found,
            answer=response.answer,
            confidence=response.confidence,
            citations=[c.model_dump(include={"id", "source", "heading", "lines"})
                       for c in response.citations],
            source=source,
            user_id=user_id,
            channel_id=channel_id,
        )
        if record and self.feedback.record_ask(entry):
            response.id = entry.id
        return response


class NotReadyError(RuntimeError):
    """No index is loaded yet (the message says why, in Chinese)."""


def _timestamp(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0
