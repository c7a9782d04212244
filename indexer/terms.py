"""Each chunk's keyword tokens, stored at index time as BM25 vocabulary ids and counts.

The service needs them for a handful of chunks per question (which query words a cited
chunk contains, how much of the question the top chunks cover) and their document
frequencies for idf. Re-tokenizing the corpus at start-up took over a minute at 100k
chunks; this table is three memory-mapped arrays (CSR: ``indptr``, ``ids``, ``counts``).
A rebuild takes an unchanged note's tokens from here instead of running jieba again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

IDS = "terms.npy"
INDPTR = "terms_indptr.npy"
COUNTS = "terms_counts.npy"


def write_terms(folder: Path, documents: Sequence[Sequence[str]], vocab: Mapping[str, int]) -> None:
    """Store each document's tokens (those in `vocab`) as sorted ids with their counts."""
    indptr = np.zeros(len(documents) + 1, dtype=np.int64)
    ids: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for i, tokens in enumerate(documents):
        found, times = np.unique(
            np.fromiter((vocab[t] for t in tokens if t in vocab), dtype=np.int32),
            return_counts=True,
        )
        ids.append(found)
        counts.append(times)
        indptr[i + 1] = indptr[i] + len(found)
    empty = np.zeros(0, dtype=np.int32)
    np.save(folder / IDS, np.concatenate(ids).astype(np.int32) if ids else empty)
    np.save(folder / COUNTS, np.concatenate(counts).astype(np.int32) if counts else empty)
    np.save(folder / INDPTR, indptr)


class ChunkTerms:
    """Read side: `terms[row]` is chunk `row`'s token set; `idf(token)` as in BM25."""

    def __init__(self, folder: Path, vocab: Mapping[str, int], cache_size: int = 4096):
        self.ids = np.load(folder / IDS, mmap_mode="r")
        self.counts = np.load(folder / COUNTS, mmap_mode="r")
        self.indptr = np.load(folder / INDPTR, mmap_mode="r")
        self.vocab = vocab
        words = [""] * (max(vocab.values(), default=-1) + 1)
        for word, i in vocab.items():
            words[i] = word
        self._words = words
        # Document frequencies once (one pass over the ids), not per question.
        self._df = np.bincount(np.asarray(self.ids), minlength=len(words))
        self._cached = lru_cache(maxsize=cache_size)(self._terms)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, row: int) -> frozenset[str]:
        return self._cached(row)

    def _terms(self, row: int) -> frozenset[str]:
        ids = self.ids[self.indptr[row] : self.indptr[row + 1]]
        return frozenset(self._words[i] for i in ids.tolist())

    def tokens(self, row: int) -> list[str]:
        """Chunk `row`'s tokens with their repeats, in no particular order (what BM25
        needs of it)."""
        start, end = int(self.indptr[row]), int(self.indptr[row + 1])
        return [
            self._words[i]
            for i, times in zip(self.ids[start:end].tolist(), self.counts[start:end].tolist(),
                                strict=True)
            for _ in range(times)
        ]

    def valid(self, vocab_size: int) -> bool:
        return (
            len(self.counts) == len(self.ids)
            and int(self.indptr[0]) == 0
            and int(self.indptr[-1]) == len(self.ids)
            and bool(np.all(np.diff(self.indptr) >= 0))
            and (len(self.ids) == 0 or int(np.max(self.ids)) < vocab_size)
        )

    def document_frequency(self, token: str) -> int:
        i = self.vocab.get(token)
        return 0 if i is None else int(self._df[i])

    def idf(self, token: str) -> float:
        n, df = len(self), self.document_frequency(token)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))
