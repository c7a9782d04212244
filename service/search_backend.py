"""The seam between the question-answering pipeline and where the chunks live.

Two implementations: `EmbeddedBackend` (the index folder: FAISS, bm25s and memory-mapped
tables in this process, the default) and `service.milvus_backend.MilvusBackend` (every
chunk, sentence and example in Milvus; the process keeps corpus-level data only).

A chunk is named by an int key: its row in the embedded index, its primary key in Milvus.
The pipeline never does arithmetic on keys; it asks the backend (`neighbours`).

Scores handed to fusion are comparable across backends: keyword scores are BM25 as bm25s
computes it (Milvus only proposes the candidates, the service scores them on corpus-level
statistics), dense scores are cosine similarities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.sentences import SentenceRecord
from indexer.store import StoredIndex
from indexer.types import Chunk, CommandExample, YamlExample

_V_co = TypeVar("_V_co", covariant=True)

# bm25s's defaults ("lucene" variant), which the embedded index is built with.
BM25_K1 = 1.5
BM25_B = 0.75


class BackendUnavailableError(RuntimeError):
    """The search backend cannot be reached (Milvus down): the question gets a 503, not a
    500. The message is in Chinese."""


class Lookup(Protocol[_V_co]):
    """Read access by key: a list for the embedded index, a fetching cache for Milvus."""

    def __getitem__(self, key: int, /) -> _V_co: ...


@dataclass(frozen=True)
class IndexInfo:
    """What /readyz and the metrics say of the index being served."""

    name: str  # the build: folder name, or Milvus generation and build time
    backend: str  # "embedded" or "milvus"
    model: str
    files: int
    chunks: int
    yaml_examples: int
    built_at: str


ScoredSentences = list[tuple[SentenceRecord, float | None]]


class SearchBackend(Protocol):
    # Read-only properties: each backend holds them in its own types (a list, a table, a
    # fetching cache).
    @property
    def info(self) -> IndexInfo: ...
    @property
    def vocabulary(self) -> Mapping[str, int]:
        """The BM25 vocabulary: which words the notes contain."""
        ...
    @property
    def english(self) -> EnglishToChinese | None: ...
    @property
    def chunks(self) -> Lookup[Chunk]: ...
    @property
    def yaml(self) -> Lookup[YamlExample]: ...
    @property
    def commands(self) -> Lookup[CommandExample]: ...
    @property
    def example_chunk(self) -> Lookup[int]:
        """YAML example key -> key of the chunk it sits in."""
        ...
    @property
    def examples_by_kind(self) -> Mapping[str, Sequence[int]]:
        """Lowercased kind -> keys of its YAML examples, in corpus order."""
        ...

    def idf(self, token: str) -> float: ...

    def keyword(self, tokens: Sequence[str], k: int) -> dict[int, float]:
        """Up to k chunks with a positive BM25 score for `tokens` (all in the vocabulary)."""
        ...

    def dense(self, vector: np.ndarray, k: int, sentence_pool: int) -> dict[int, float]:
        """The k chunks closest to `vector` (1 x d, normalised); a chunk is as close as its
        closest sentence."""
        ...

    def prefetch(self, keys: Iterable[int]) -> None:
        """Fetch these chunks at once (the next reads of them are local)."""
        ...

    def sentences(
        self, keys: Sequence[int], vector: np.ndarray | None
    ) -> dict[int, ScoredSentences]:
        """Each chunk's sentences in order, with their similarity to `vector`."""
        ...

    def terms(self, keys: Sequence[int]) -> list[frozenset[str]]:
        """Each chunk's distinct keyword tokens."""
        ...

    def neighbours(self, key: int) -> list[int]:
        """The chunks just before and after `key` in the same section."""
        ...

    def mentions(self, name: str) -> bool:
        """Whether the notes mention `name` (lowercased)."""
        ...

    def sentences_between(self, source: str, first: int, last: int) -> list[SentenceRecord]:
        """The sentences of note `source` starting on lines first..last (evaluation)."""
        ...

    def note_text(self, source: str) -> str | None:
        """The text of note `source` as indexed, or None when it is not a note here."""
        ...


class EmbeddedBackend:
    """The index folder, loaded into this process (the default backend)."""

    def __init__(self, index: StoredIndex):
        self.index = index
        manifest = index.manifest
        self.info = IndexInfo(
            name=index.path.name, backend="embedded", model=manifest.model,
            files=len(manifest.files), chunks=manifest.chunk_count,
            yaml_examples=manifest.yaml_count, built_at=manifest.built_at,
        )
        self.vocabulary = index.bm25.vocab_dict
        self.english = index.english
        self.chunks = index.chunks
        self.yaml = index.yaml
        self.commands = index.commands
        # Stored by the index: finding each example's chunk here would parse every chunk.
        self.example_chunk = index.chunks.yaml_owner.tolist()
        self.examples_by_kind = examples_by_kind(index.yaml)
        self._dense_kind = manifest.dense_index
        self._sentence_vectors = index.sentence_vectors().view(np.ndarray)
        self._texts: list[str] = []

    def idf(self, token: str) -> float:
        return self.index.terms.idf(token)

    def keyword(self, tokens: Sequence[str], k: int) -> dict[int, float]:
        scores = np.asarray(self.index.bm25.get_scores(list(tokens)), dtype=np.float32)
        return {int(i): float(scores[i]) for i in top(scores, k) if scores[i] > 0}

    def dense(self, vector: np.ndarray, k: int, sentence_pool: int) -> dict[int, float]:
        n = self.index.dense.ntotal
        if n == 0:
            return {}
        if self._dense_kind == "flat":
            # Exact (small notes): the sentences are searched as well as the chunks, which
            # finds a fact in a chunk whose vector is far from the question.
            sims, ids = self.index.dense.search(vector, min(k, n))
            scores = _scores(sims, ids)
            sentence_sims = self._sentence_vectors @ vector[0]
            for sid in top(sentence_sims, k * sentence_pool):
                row = int(self.index.sentences.chunks[sid])
                scores[row] = max(scores.get(row, -1.0), float(sentence_sims[sid]))
            return best(scores, k)
        # Approximate (HNSW): a global sentence search would need a second index three
        # times the size of the chunks'. The sentences of a wider pool of chunks are
        # compared instead; reading them from the memory-mapped matrix costs ~0.1 ms.
        sims, ids = self.index.dense.search(vector, min(k * sentence_pool, n))
        scores = _scores(sims, ids)
        rows = np.fromiter(scores, dtype=np.int64, count=len(scores))
        first, end = self.index.sentences.spans(rows)
        lengths = end - first
        has = lengths > 0
        if has.any():
            rows, first, lengths = rows[has], first[has], lengths[has]
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            # Positions of every sentence of these chunks, chunk after chunk.
            flat = np.repeat(first - starts, lengths) + np.arange(int(lengths.sum()))
            closest = np.maximum.reduceat(self._sentence_vectors[flat] @ vector[0], starts)
            for row, value in zip(rows.tolist(), closest.tolist(), strict=True):
                scores[row] = max(scores[row], value)
        return best(scores, k)

    def prefetch(self, keys: Iterable[int]) -> None:
        pass  # everything is local

    def sentences(
        self, keys: Sequence[int], vector: np.ndarray | None
    ) -> dict[int, ScoredSentences]:
        out: dict[int, ScoredSentences] = {}
        table = self.index.sentences
        for row in keys:
            rows = table.of_chunk(row)
            if vector is None or not rows:
                out[row] = [(table[i], None) for i in rows]
                continue
            sims = self._sentence_vectors[rows.start : rows.stop] @ vector[0]
            out[row] = [(table[i], float(s)) for i, s in zip(rows, sims, strict=True)]
        return out

    def terms(self, keys: Sequence[int]) -> list[frozenset[str]]:
        return [self.index.terms[row] for row in keys]

    def neighbours(self, key: int) -> list[int]:
        chunks = self.index.chunks
        chunk = chunks[key]
        return [
            other
            for other in (key - 1, key + 1)
            if 0 <= other < len(chunks)
            and chunks[other].source == chunk.source
            and chunks[other].heading == chunk.heading
        ]

    def mentions(self, name: str) -> bool:
        # The index knows for the names it was built with; any other (a glossary edited
        # since) is looked up in the note texts.
        if name in self.index.names:
            return self.index.names[name]
        if not self._texts:
            self._texts.extend(
                (" ".join(c.heading) + "\n" + c.text).lower() for c in self.index.chunks
            )
        return any(name in text for text in self._texts)

    def sentences_between(self, source: str, first: int, last: int) -> list[SentenceRecord]:
        chunks = self.index.chunks
        return [
            s for s in self.index.sentences
            if first <= s.line <= last and chunks[s.chunk].source == source
        ]

    def note_text(self, source: str) -> str | None:
        return self.index.note_text(source)


def examples_by_kind(examples: Sequence[YamlExample]) -> dict[str, list[int]]:
    """Example ids by lowercased kind, in index order."""
    by_kind: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_kind.setdefault((ex.kind or "").lower(), []).append(i)
    return by_kind


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest scores, best first, without sorting all of them."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def best(scores: dict[int, float], k: int) -> dict[int, float]:
    return {row: scores[row] for row in sorted(scores, key=lambda r: -scores[r])[:k]}


def _scores(sims: np.ndarray, ids: np.ndarray) -> dict[int, float]:
    return {int(i): float(s) for s, i in zip(sims[0], ids[0], strict=True) if i >= 0}


def bm25_idf(documents: int, frequency: int) -> float:
    """BM25 idf as bm25s's "lucene" variant (and `ChunkTerms.idf`) computes it."""
    return float(np.log(1 + (documents - frequency + 0.5) / (frequency + 0.5)))


def bm25_score(
    query: Sequence[str],
    counts: Mapping[str, int],
    length: int,
    average_length: float,
    idf: Mapping[str, float],
) -> float:
    """A document's BM25 score as bm25s computes it: each query token (repeats counted)
    adds idf * tf / (tf + k1 * (1 - b + b * length / average))."""
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (average_length or 1.0))
    total = 0.0
    for token in query:
        tf = counts.get(token, 0)
        if tf:
            total += idf[token] * tf / (tf + norm)
    return total
