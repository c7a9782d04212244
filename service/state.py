"""What the running service holds: settings, the loaded index's engine, the feedback store,
metrics. The HTTP app, the Slack bot and the CLI's Socket Mode runner share one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from indexer.embedding import Embedder, load_embedder
from indexer.settings import Settings
from indexer.store import IndexNotFoundError, current_build, load_build
from indexer.tokenization import Tokenizer
from service.feedback import AskRecord, FeedbackStore, Source
from service.followup import Turn
from service.glossary import Glossary
from service.qa import QAEngine
from service.rerank import Reranker, load_reranker
from service.retrieval import Mode
from service.schemas import AskResponse

log = logging.getLogger("notesqa")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.asks = Counter(
            "notesqa_asks", "Questions answered", ["mode", "found"], registry=self.registry
        )
        self.slack_events = Counter(
            "notesqa_slack_events",
            "Slack events, commands and clicks by outcome",
            ["kind", "outcome"],
            registry=self.registry,
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
        self.feedback = FeedbackStore(settings.feedback_db, settings.retention_days)

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
        response = engine.ask(question, top_k=top_k, mode=mode, history=history)
        self.metrics.latency.observe(time.perf_counter() - started)
        self.metrics.asks.labels(mode, str(response.found).lower()).inc()
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
