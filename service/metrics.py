"""Prometheus metrics (names prefixed `notesqa_`), one registry per app so that two apps in
one process (tests) do not share counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The stages `QAEngine.ask` reports in `timings_ms`.
STAGES = ("embed", "bm25", "dense", "fuse", "rerank", "answer", "yaml")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "notesqa_http_requests", "HTTP requests by endpoint and status",
            ["method", "endpoint", "status"], registry=r,
        )
        self.request_seconds = Histogram(
            "notesqa_http_request_seconds", "HTTP request latency by endpoint",
            ["method", "endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.asks = Counter(
            "notesqa_asks", "Questions answered, by mode and whether the notes answered",
            ["mode", "found"], registry=r,
        )
        self.latency = Histogram(
            "notesqa_ask_seconds", "Time to answer a question (all channels)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.stage_seconds = Histogram(
            "notesqa_stage_seconds", "Time per answering stage", ["stage"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.index_chunks = Gauge(
            "notesqa_index_chunks", "Chunks in the index being served", registry=r
        )
        self.index_built = Gauge(
            "notesqa_index_built_timestamp_seconds",
            "When the index being served was built (age = time() - this)", registry=r,
        )
        self.reloads = Counter(
            "notesqa_index_reloads", "Index loads by outcome (loaded, failed)", ["outcome"],
            registry=r,
        )
        self.slack_events = Counter(
            "notesqa_slack_events", "Slack events, commands and clicks by outcome",
            ["kind", "outcome"], registry=r,
        )

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage in STAGES:
            if stage in timings_ms:
                self.stage_seconds.labels(stage).observe(timings_ms[stage] / 1000)
