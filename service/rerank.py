"""Optional reranking of retrieved chunks by a cross-encoder.

Off by default: no Chinese cross-encoder ships on PyPI, and nothing may be downloaded at run
time. With hub access (or a local copy) set NOTESQA_RERANKER to a sentence-transformers
CrossEncoder name or folder, e.g. BAAI/bge-reranker-base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from service.retrieval import Hit


class Reranker(Protocol):
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]: ...


class CrossEncoderReranker:
    """Scores (question, chunk) pairs jointly; the fused score becomes the model's score."""

    def __init__(self, model: str, max_length: int = 512):
        import os

        from sentence_transformers import CrossEncoder

        if Path(model).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._model = CrossEncoder(model, device="cpu", max_length=max_length)

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        if not hits:
            return []
        pairs = [(query, hit.chunk.embedding_text()) for hit in hits]
        scores = self._model.predict(pairs, show_progress_bar=False)
        rescored = [
            replace(hit, fused=float(score)) for hit, score in zip(hits, scores, strict=True)
        ]
        return sorted(rescored, key=lambda h: -h.fused)


def load_reranker(model: str | None) -> Reranker | None:
    return CrossEncoderReranker(model) if model else None
