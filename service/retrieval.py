"""Hybrid retrieval: BM25 over jieba tokens and dense FAISS search, fused by rank."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from indexer.bilingual import EnglishToChinese, is_english
from indexer.embedding import Embedder
from indexer.settings import Settings
from indexer.store import StoredIndex
from indexer.tokenization import Tokenizer
from indexer.types import Chunk
from service.glossary import Glossary
from service.spelling import SpellingCorrector
from service.yaml_match import wants_example

Mode = Literal["hybrid", "bm25", "dense"]

_ASKS_DIFFERENCE = re.compile(r"(区别|不同|差异|对比|vs\.?|versus|difference|compare)", re.I)


def asks_difference(question: str) -> bool:
    return bool(_ASKS_DIFFERENCE.search(question))


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
    query_tokens: list[str]  # the user's words (spelling corrected) plus glossary expansion
    own_tokens: list[str]  # the user's words only, spelling corrected
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
        index: StoredIndex,
        embedder: Embedder,
        tokenizer: Tokenizer,
        glossary: Glossary,
        fusion: FusionConfig,
    ):
        self.index = index
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.glossary = glossary
        self.fusion = fusion
        self.chunk_tokens: list[frozenset[str]] = [
            frozenset(tokenizer.tokenize(" ".join(c.heading) + "\n" + c.text))
            for c in index.chunks
        ]
        glossary_words = tokenizer.tokenize(
            " ".join(w for t in glossary.terms for w in (t.name, *t.aliases) if w.isascii())
        )
        self.speller = SpellingCorrector(
            [*index.bm25.vocab_dict, *glossary_words]
        )
        # English words the notes never use are searched by their Chinese translations.
        # Indexes built before the table was stored with them get it computed here (~1 s).
        self.english = index.english or EnglishToChinese.for_vocabulary(index.bm25.vocab_dict)
        self.code_only = [
            not any(line.strip() for line, _ in c.prose_lines()) for c in index.chunks
        ]
        self.sentence_vectors = index.sentence_vectors()
        self.sentences_of_chunk: list[list[int]] = [[] for _ in index.chunks]
        for i, sentence in enumerate(index.sentences):
            self.sentences_of_chunk[sentence.chunk].append(i)

    def query_tokens(self, query: str) -> tuple[list[str], list[str]]:
        """(own, expanded): the query's tokens with typos fixed, and those plus the
        glossary's synonyms for the terms it names and the Chinese translations of
        English words the corpus does not use."""
        own = self.speller.correct(self.tokenizer.tokenize(query))
        named = self.glossary.expansion(query + " " + " ".join(own))
        expansion = self.tokenizer.tokenize(" ".join(named))
        translated: list[str] = []
        if is_english(query):
            # In a Chinese question the English words are names, not everyday words.
            vocab = self.index.bm25.vocab_dict
            translated = [zh for t in own if t not in vocab for zh in self.english.translate(t)]
        return own, own + [t for t in dict.fromkeys(expansion + translated) if t not in own]

    def search(self, query: str, mode: Mode = "hybrid", limit: int = 10) -> Retrieval:
        timings: dict[str, float] = {}
        n = len(self.index.chunks)
        candidates = min(self.fusion.candidates, n)

        t0 = time.perf_counter()
        own_tokens, tokens = self.query_tokens(query)
        bm25_scores: dict[int, float] = {}
        if mode in ("hybrid", "bm25") and tokens:
            known = [t for t in tokens if t in self.index.bm25.vocab_dict]
            if known:
                scores = np.asarray(self.index.bm25.get_scores(known), dtype=np.float32)
                top = np.argsort(-scores)[:candidates]
                bm25_scores = {int(i): float(scores[i]) for i in top if scores[i] > 0}
        timings["bm25"] = (time.perf_counter() - t0) * 1000

        dense_scores: dict[int, float] = {}
        vector = None
        own_dense = None
        if mode in ("hybrid", "dense") and n:
            t1 = time.perf_counter()
            texts = [query]
            expansion = tokens[len(own_tokens):] if is_english(query) else []
            if expansion:
                # English words sit far from Chinese notes in the model's space; their
                # Chinese names and translations, added to the text, bring it closer.
                texts.append(query + " " + " ".join(expansion))
            vectors = self.embedder.encode_queries(texts)
            vector = vectors[-1:]
            if expansion:
                own_dense = self._best_similarity(vectors[:1])
            timings["embed"] = (time.perf_counter() - t1) * 1000
            t2 = time.perf_counter()
            sims, ids = self.index.dense.search(vector, candidates)
            dense_scores = {
                int(i): float(s) for s, i in zip(sims[0], ids[0], strict=True) if i >= 0
            }
            # A chunk is as close as its closest sentence: short facts inside long
            # sections are otherwise drowned by the rest of the section.
            if self.index.sentence_dense.ntotal:
                s_sims, s_ids = self.index.sentence_dense.search(
                    vector, min(candidates * 4, self.index.sentence_dense.ntotal)
                )
                for sim, sid in zip(s_sims[0], s_ids[0], strict=True):
                    if sid < 0:
                        continue
                    row = self.index.sentences[int(sid)].chunk
                    if float(sim) > dense_scores.get(row, -1.0):
                        dense_scores[row] = float(sim)
                best = sorted(dense_scores, key=lambda r: -dense_scores[r])[:candidates]
                dense_scores = {row: dense_scores[row] for row in best}
            timings["dense"] = (time.perf_counter() - t2) * 1000
        else:
            timings["embed"] = 0.0

        t3 = time.perf_counter()
        fused = self._fuse(bm25_scores, dense_scores)
        if mode == "hybrid":
            self._favour_comparisons(query, own_tokens, fused)
        if not wants_example(query):
            for row in fused:
                if self.code_only[row]:
                    fused[row] *= self.fusion.code_only_factor
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:limit]
        token_set = set(tokens)
        hits = [
            Hit(
                row=row,
                chunk=self.index.chunks[row],
                fused=score,
                bm25=bm25_scores.get(row),
                dense=dense_scores.get(row),
                matched_terms=tuple(t for t in dict.fromkeys(tokens)
                                    if t in self.chunk_tokens[row] and t in token_set),
            )
            for row, score in ranked
        ]
        timings["fuse"] = (time.perf_counter() - t3) * 1000
        return Retrieval(hits, tokens, own_tokens, vector, timings, own_dense)

    def _best_similarity(self, vector: np.ndarray) -> float:
        """Similarity of the nearest chunk or sentence."""
        sims, _ = self.index.dense.search(vector, 1)
        best = float(sims[0][0])
        if self.index.sentence_dense.ntotal:
            best = max(best, float(self.index.sentence_dense.search(vector, 1)[0][0][0]))
        return best

    def _favour_comparisons(self, query: str, own: list[str], fused: dict[int, float]) -> None:
        """A comparison ("ingres 和 servcie 有啥区别") is best answered by a section that
        names every object compared, such as a summary setting them side by side; the
        sections about each object alone otherwise fill the top ranks."""
        if not asks_difference(query):
            return
        names = self.glossary.subjects(query + " " + " ".join(own))
        if len(names) < 2:
            return
        for row in fused:
            if self.glossary.names_all(self.index.chunks[row].text, names):
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
