"""The common approach, measured in the same run as the service: `rank_bm25.BM25Okapi` over
the same jieba tokens plus brute-force numpy cosine over the same vectors (chunks, and
sentences folded into their chunk as the service does), fused the service's way (weighted
min-max, same dense weight, same candidates per leg). Only the search stage is timed, on
the same analysed questions and query vectors as the service's Retriever."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import Json, own_rss_mb, summary


@dataclass(frozen=True)
class Query:
    question: str
    analysis: Any  # service.query.QueryAnalysis
    tokens: list[str]  # the analysed tokens found in the BM25 vocabulary
    vector: np.ndarray  # (1, d), what the service's dense leg searches with


def analyzer_for(index: Any) -> Any:
    """The service's query analyzer for an index (its vocabulary and English table)."""
    from indexer.bilingual import EnglishToChinese
    from indexer.tokenization import Tokenizer
    from service.glossary import Glossary
    from service.query import QueryAnalyzer

    vocab = index.bm25.vocab_dict
    return QueryAnalyzer(Tokenizer(), Glossary.load(), vocab,
                         index.english or EnglishToChinese.for_vocabulary(vocab))


def prepare(analyzer: Any, embedder: Any, asked: Sequence[str]) -> list[Query]:
    """Analyse and embed each question exactly as service/retrieval.py does."""
    vocab = analyzer.vocabulary
    out = []
    for q in asked:
        a = analyzer.analyze(q)
        texts = [a.text]
        expansion = a.expansion if a.english else ()
        if expansion:
            texts.append(a.text + " " + " ".join(expansion))
        vector = np.asarray(embedder.encode_queries(texts)[-1:], dtype=np.float32)
        out.append(Query(q, a, [t for t in a.tokens if t in vocab], vector))
    return out


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo or 1.0
    return {row: (s - lo) / span for row, s in scores.items()}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])]


class Baseline:
    def __init__(
        self,
        token_lists: Sequence[list[str]],
        vectors: np.ndarray,
        sentence_vectors: np.ndarray,
        sentence_chunk: np.ndarray,
        candidates: int,
        dense_weight: float,
    ):
        from rank_bm25 import BM25Okapi

        gc.collect()
        before = own_rss_mb()
        t = time.perf_counter()
        self.bm25 = BM25Okapi(token_lists)
        self.build_s = time.perf_counter() - t
        gc.collect()
        self.bm25_mb = own_rss_mb() - before
        # RSS can understate it (memory freed earlier is reused): the dicts' own size too.
        self.bm25_dicts_mb = (sum(sys.getsizeof(d) for d in self.bm25.doc_freqs)
                              + sys.getsizeof(self.bm25.idf)) / 2**20
        self.vectors = vectors
        self.sentence_vectors = sentence_vectors
        self.sentence_chunk = sentence_chunk
        self.candidates = candidates
        self.dense_weight = dense_weight

    def search(self, query: Query) -> tuple[dict[str, float], list[int]]:
        n = len(self.vectors)
        k = min(self.candidates, n)
        t0 = time.perf_counter()
        bm25: dict[int, float] = {}
        if query.tokens:
            scores = self.bm25.get_scores(query.tokens)
            bm25 = {int(i): float(scores[i]) for i in _top(scores, k) if scores[i] > 0}
        t1 = time.perf_counter()
        q = query.vector[0]
        sims = self.vectors @ q
        dense = {int(i): float(sims[i]) for i in _top(sims, k)}
        if len(self.sentence_vectors):
            s_sims = self.sentence_vectors @ q
            for sid in _top(s_sims, min(k * 4, len(s_sims))):
                row = int(self.sentence_chunk[sid])
                if float(s_sims[sid]) > dense.get(row, -1.0):
                    dense[row] = float(s_sims[sid])
            best = sorted(dense, key=lambda r: -dense[r])[:k]
            dense = {row: dense[row] for row in best}
        t2 = time.perf_counter()
        if not bm25:
            fused = dict(dense)
        elif not dense:
            fused = dict(bm25)
        else:
            w = self.dense_weight
            b, d = _minmax(bm25), _minmax(dense)
            fused = {r: w * d.get(r, 0.0) + (1 - w) * b.get(r, 0.0) for r in set(bm25) | set(d)}
        ranked = [r for r, _ in sorted(fused.items(), key=lambda kv: -kv[1])[:10]]
        t3 = time.perf_counter()
        return {"bm25": (t1 - t0) * 1000, "dense": (t2 - t1) * 1000,
                "fuse": (t3 - t2) * 1000, "search": (t3 - t0) * 1000}, ranked


def measure(baseline: Baseline, queries: Sequence[Query]) -> Json:
    for q in queries[:3]:  # warm-up
        baseline.search(q)
    stages: dict[str, list[float]] = {"bm25": [], "dense": [], "fuse": [], "search": []}
    for q in queries:
        timings, _ = baseline.search(q)
        for key, value in timings.items():
            stages[key].append(value)
    return {
        "questions": len(queries),
        "build_bm25_s": round(baseline.build_s, 3),
        "bm25_rss_mb": round(baseline.bm25_mb, 1),
        "bm25_dicts_mb": round(baseline.bm25_dicts_mb, 1),
        "stages_ms": {k: summary(v) for k, v in stages.items()},
    }


def measure_retriever(retriever: Any, queries: Sequence[Query]) -> Json:
    """The service's own Retriever in-process on the same analysed questions: its search
    stage (bm25 + dense + fuse, the query embedding excluded as in timings_ms)."""
    for q in queries[:3]:
        retriever.search(q.analysis)
    stages: dict[str, list[float]] = {"bm25": [], "dense": [], "fuse": [], "search": []}
    for q in queries:
        t = retriever.search(q.analysis).timings_ms
        search = t.get("bm25", 0.0) + t.get("dense", 0.0) + t.get("fuse", 0.0)
        for key, value in (("bm25", t.get("bm25", 0.0)), ("dense", t.get("dense", 0.0)),
                           ("fuse", t.get("fuse", 0.0)), ("search", search)):
            stages[key].append(value)
    return {"questions": len(queries), "stages_ms": {k: summary(v) for k, v in stages.items()}}


def retriever_for(index: Any, embedder: Any) -> Any:
    from indexer.settings import Settings
    from indexer.tokenization import Tokenizer
    from service.glossary import Glossary
    from service.retrieval import FusionConfig, Retriever

    return Retriever(index, embedder, Tokenizer(), Glossary.load(),
                     FusionConfig.from_settings(Settings()))


def fusion_settings() -> tuple[int, float]:
    from indexer.settings import Settings

    s = Settings()
    return s.candidates, s.dense_weight
