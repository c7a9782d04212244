"""Typo tolerance for English identifiers ("servcie", "damonset", "kube-schduler")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import lru_cache

MIN_LENGTH = 5  # shorter words have too many neighbours to correct safely
CUTOFF = 0.8


class SpellingCorrector:
    def __init__(self, vocabulary: Iterable[str]):
        self._known = frozenset(vocabulary)
        self._candidates = sorted(
            w for w in self._known if w.isascii() and len(w) >= MIN_LENGTH - 1
        )
        self.correct_word = lru_cache(maxsize=4096)(self._correct_word)

    def _correct_word(self, word: str) -> str:
        if word in self._known or not word.isascii() or len(word) < MIN_LENGTH:
            return word
        match = difflib.get_close_matches(word, self._candidates, n=1, cutoff=CUTOFF)
        return match[0] if match else word

    def correct(self, tokens: Iterable[str]) -> list[str]:
        return [self.correct_word(t) for t in tokens]
