"""Keyword tokens for BM25: jieba with a Kubernetes user dictionary, lowercased, no stopwords."""

from __future__ import annotations

import logging
import re
from functools import cached_property
from importlib import resources
from pathlib import Path

import jieba

_DATA = resources.files("indexer") / "data"
_WORD = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
# jieba splits "kube-proxy" at the hyphen before its dictionary is consulted, so compound
# identifiers (kube-proxy, apps/v1, networking.k8s.io) are cut out first and kept whole.
_COMPOUND = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)+")
_PARTS = re.compile(r"[-/.]")


def _read_lines(name: str) -> list[str]:
    text = (_DATA / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class Tokenizer:
    """Owns its own jieba instance so tests and apps never share dictionary state."""

    def __init__(self, extra_words: list[str] | None = None, userdict: Path | None = None):
        self._extra_words = extra_words or []
        self._userdict = userdict

    @cached_property
    def _jieba(self) -> jieba.Tokenizer:
        logging.getLogger("jieba").setLevel(logging.WARNING)
        jieba.setLogLevel(logging.WARNING)
        tok = jieba.Tokenizer()
        tok.initialize()
        for line in _read_lines("k8s_userdict.txt"):
            word, *rest = line.split()
            tok.add_word(word, int(rest[0]) if rest else 2000, rest[1] if len(rest) > 1 else None)
        for word in self._extra_words:
            tok.add_word(word.lower(), 2000)
        if self._userdict is not None:
            tok.load_userdict(str(self._userdict))
        return tok

    @cached_property
    def stopwords(self) -> frozenset[str]:
        return frozenset(_read_lines("stopwords.txt"))

    def words(self, text: str) -> list[str]:
        """All words, stopwords included (used for glossary matching and follow-ups)."""
        text = text.lower()
        out: list[str] = []
        pos = 0
        for match in _COMPOUND.finditer(text):
            out.extend(self._cut(text[pos : match.start()]))
            compound = match.group(0)
            # The whole identifier and its parts, so "proxy" still finds "kube-proxy".
            out.append(compound)
            out.extend(part for part in _PARTS.split(compound) if part)
            pos = match.end()
        out.extend(self._cut(text[pos:]))
        return out

    def _cut(self, text: str) -> list[str]:
        if not text.strip():
            return []
        return [p.strip() for p in self._jieba.lcut(text, HMM=True) if _WORD.search(p)]

    def tokenize(self, text: str) -> list[str]:
        """Keyword tokens: lowercased, stopwords removed."""
        stop = self.stopwords
        return [w for w in self.words(text) if w not in stop]
