"""Each chunk's distinct keyword tokens, stored at index time as BM25 vocabulary ids.

The service needs them for a handful of chunks per question (which query words a cited
chunk contains, how much of the question the top chunks cover) and their document
frequencies for idf. Re-tokenizing the corpus at start-up took over a minute at 100k
chunks; this table is two memory-mapped arrays (CSR: ``indptr`` and ``ids``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

IDS = "terms.npy"
INDPTR = "terms_indptr.npy"


def write_terms(folder: Path, documents: Sequence[Sequence[str]], vocab: Mapping[str, int]) -> None:
    """Store each document's distinct tokens (those in `vocab`) as sorted ids."""
    indptr = np.zeros(len(documents) + 1, dtype=np.int64)
    rows: list[np.ndarray] = []
    for i, tokens in enumerate(documents):
        ids = np.unique(np.fromiter((vocab[t] for t in tokens if t in vocab), dtype=np.int32))
        rows.append(ids)
        indptr[i + 1] = indptr[i] + len(ids)
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
    np.save(folder / IDS, flat.astype(np.int32, copy=False))
    np.save(folder / INDPTR, indptr)


class ChunkTerms:
    """Read side: `terms[row]` is chunk `row`'s token set; `idf(token)` as in BM25."""

    def __init__(self, folder: Path, vocab: Mapping[str, int], cache_size: int = 4096):
        self.ids = np.load(folder / IDS, mmap_mode="r")
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

    def valid(self, vocab_size: int) -> bool:
        return (
            int(self.indptr[0]) == 0
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
