"""Hybrid retrieval: BM25 over jieba tokens and dense search on the search backend, fused
by rank or by per-query normalised scores."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from indexer.embedding import Embedder
from indexer.settings import Settings
from indexer.store import StoredIndex
from indexer.tokenization import Tokenizer
from indexer.types import Chunk
from service.glossary import Glossary
from service.query import QueryAnalysis
from service.search_backend import EmbeddedBackend, SearchBackend

Mode = Literal["hybrid", "bm25", "dense"]
QUERY_CACHE_SIZE = 1024  # query vectors kept (1.5 KB each)


@dataclass(frozen=True)
class Hit:
    row: int
    chunk: Chunk
    fused: float
    bm25: float | None  # raw BM25 score (None: not a BM25 candidate)
    dense: float | None  # cosine similarity (None: not a dense candidate)
    matched_terms: tuple[str, ...]


@dataclass
class Retrieval:
    hits: list[Hit]
    query: QueryAnalysis
    query_vector: np.ndarray | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The question's own best similarity to any chunk or sentence when the dense leg
    # searched with an expanded text instead (English questions): abstention judges this,
    # since the added Chinese words bring every question closer to the notes.
    own_dense: float | None = None


@dataclass(frozen=True)
class FusionConfig:
    method: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = 60
    dense_weight: float = 0.5
    candidates: int = 30
    # Added to the fused score (0..1) of a chunk naming every object a comparison
    # question names (hybrid mode only, where scores share that scale).
    comparison_bonus: float = 0.2
    # Scales the score of a chunk that is only a code block (a manifest, a command)
    # unless the question asks for an example: it shows, it does not explain.
    code_only_factor: float = 0.5
    # Sentences searched per candidate kept (exact), or chunks whose sentences are
    # compared per candidate kept (HNSW).
    sentence_pool: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        return cls(
            method=settings.fusion,
            rrf_k=settings.rrf_k,
            dense_weight=settings.dense_weight,
            candidates=settings.candidates,
        )


class Retriever:
    def __init__(
        self,
        index: StoredIndex | SearchBackend,
        embedder: Embedder,
        tokenizer: Tokenizer,
        glossary: Glossary,
        fusion: FusionConfig,
    ):
        self.backend: SearchBackend = (
            EmbeddedBackend(index) if isinstance(index, StoredIndex) else index
        )
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.glossary = glossary
        self.fusion = fusion
        # The same question asked again (a retry, a popular question, the page's example
        # buttons) skips the model, which is most of a question's time.
        self._encode = lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_uncached)
        self._code_only: dict[int, bool] = {}

    def _encode_uncached(self, texts: tuple[str, ...]) -> np.ndarray:
        vectors = self.embedder.encode_queries(list(texts))
        vectors.setflags(write=False)  # shared by every caller of the cache
        return vectors

    def code_only(self, row: int) -> bool:
        """Chunk `row` is only a code block (a manifest, a command)."""
        if row not in self._code_only:
            chunk = self.backend.chunks[row]
            self._code_only[row] = not any(line.strip() for line, _ in chunk.prose_lines())
        return self._code_only[row]

    def search(self, query: QueryAnalysis, mode: Mode = "hybrid", limit: int = 10) -> Retrieval:
        timings: dict[str, float] = {}
        backend = self.backend
        candidates = min(self.fusion.candidates, backend.info.chunks)

        t0 = time.perf_counter()
        tokens = list(query.tokens)
        bm25_scores: dict[int, float] = {}
        if mode in ("hybrid", "bm25") and tokens and candidates:
            known = [t for t in tokens if t in backend.vocabulary]
            if known:
                bm25_scores = backend.keyword(known, candidates)
        timings["bm25"] = (time.perf_counter() - t0) * 1000

        dense_scores: dict[int, float] = {}
        vector = None
        own_dense = None
        if mode in ("hybrid", "dense") and candidates:
            t1 = time.perf_counter()
            texts = [query.text]
            expansion = query.expansion if query.english else ()
            if expansion:
                # English words sit far from Chinese notes in the model's space; their
                # Chinese names and translations, added to the text, bring it closer.
                texts.append(query.text + " " + " ".join(expansion))
            vectors = self._encode(tuple(texts))
            vector = vectors[-1:]
            if expansion:
                own_dense = self._best_similarity(vectors[:1])
            timings["embed"] = (time.perf_counter() - t1) * 1000
            t2 = time.perf_counter()
            dense_scores = backend.dense(vector, candidates, self.fusion.sentence_pool)
            timings["dense"] = (time.perf_counter() - t2) * 1000
        else:
            timings["embed"] = 0.0

        t3 = time.perf_counter()
        fused = self._fuse(bm25_scores, dense_scores)
        # Every candidate's text is read below: one round trip where chunks are remote.
        backend.prefetch(fused)
        if mode == "hybrid":
            self._favour_comparisons(query, fused)
        if not (query.wants_example or query.wants_command):
            for row in fused:
                if self.code_only(row):
                    fused[row] *= self.fusion.code_only_factor
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:limit]
        token_set = set(tokens)
        rows = [row for row, _ in ranked]
        hits = [
            Hit(
                row=row,
                chunk=backend.chunks[row],
                fused=score,
                bm25=bm25_scores.get(row),
                dense=dense_scores.get(row),
                matched_terms=tuple(t for t in dict.fromkeys(tokens)
                                    if t in chunk_terms and t in token_set),
            )
            for (row, score), chunk_terms in zip(ranked, backend.terms(rows), strict=True)
        ]
        timings["fuse"] = (time.perf_counter() - t3) * 1000
        return Retrieval(hits, query, vector, timings, own_dense)

    def _best_similarity(self, vector: np.ndarray) -> float:
        """Similarity of the nearest chunk or sentence."""
        scores = self.backend.dense(vector, self.fusion.candidates, self.fusion.sentence_pool)
        return max(scores.values(), default=0.0)

    def _favour_comparisons(self, query: QueryAnalysis, fused: dict[int, float]) -> None:
        """A comparison ("ingres 和 servcie 有啥区别") is best answered by a section that
        names every object compared, such as a summary setting them side by side; the
        sections about each object alone otherwise fill the top ranks."""
        if not query.asks_difference:
            return
        names = query.subjects
        if len(names) < 2:
            return
        for row in fused:
            if self.glossary.names_all(self.backend.chunks[row].text, names):
                fused[row] += self.fusion.comparison_bonus

    def _fuse(self, bm25: dict[int, float], dense: dict[int, float]) -> dict[int, float]:
        if not bm25:
            return dict(dense)
        if not dense:
            return dict(bm25)
        if self.fusion.method == "rrf":
            k = self.fusion.rrf_k
            fused: dict[int, float] = {}
            for scores in (bm25, dense):
                for rank, row in enumerate(sorted(scores, key=lambda r: -scores[r]), start=1):
                    fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
            return fused
        w = self.fusion.dense_weight
        b_norm = _minmax(bm25)
        d_norm = _minmax(dense)
        return {
            row: w * d_norm.get(row, 0.0) + (1 - w) * b_norm.get(row, 0.0)
            for row in set(bm25) | set(dense)
        }


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo or 1.0
    return {row: (s - lo) / span for row, s in scores.items()}
