"""The Kubernetes glossary (`service/data/glossary.yaml`): kind detection and query expansion."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Term:
    name: str
    is_kind: bool
    aliases: tuple[str, ...]
    related: tuple[str, ...]
    word: bool = False  # a question word ("区别", "default"), not a subject


@dataclass(frozen=True)
class Mention:
    term: Term
    start: int  # position in the lowercased text, to keep mentions in reading order
    strong: bool  # named by its name or an alias (not only a related word)


def _pattern(alias: str) -> re.Pattern[str]:
    alias = alias.lower()
    escaped = re.escape(alias)
    # ASCII names need word boundaries ("rs" must not match inside "users").
    if re.fullmatch(r"[a-z0-9 ./-]+", alias):
        return re.compile(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])")
    return re.compile(escaped)


class Glossary:
    def __init__(self, terms: list[Term]):
        self.terms = terms
        # Longest alias first across all terms: "cron job" names CronJob, not Job, and
        # "有状态副本集" StatefulSet, not ReplicaSet (副本集).
        self._strong = sorted(
            ((term, alias) for term in terms for alias in {term.name, *term.aliases}),
            key=lambda pair: -len(pair[1]),
        )
        # With the lowercased alias: a substring test skips the regex for the (nearly all)
        # aliases a question does not contain.
        self._strong_patterns = [
            (term, alias.lower(), _pattern(alias)) for term, alias in self._strong
        ]
        self._weak = [
            (term, alias.lower(), _pattern(alias)) for term in terms for alias in term.related
        ]
        self._latin = {
            term.name: [_pattern(a) for a in {term.name, *term.aliases} if a.isascii()]
            for term in terms
        }
        self.by_name = {term.name.lower(): term for term in terms}

    @classmethod
    def load(cls, path: Path | None = None) -> Glossary:
        if path is None:
            text = (resources.files("service") / "data" / "glossary.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        entries = yaml.safe_load(text) or []
        terms = [
            Term(
                name=str(e["name"]),
                is_kind=bool(e.get("kind", False)),
                aliases=tuple(str(a) for a in e.get("aliases", []) or []),
                related=tuple(str(a) for a in e.get("related", []) or []),
                word=bool(e.get("word", False)),
            )
            for e in entries
        ]
        return cls(terms)

    def mentions(self, text: str) -> list[Mention]:
        """Terms named in the text, first mention first; longer aliases win overlaps."""
        lowered = text.lower()
        # Characters already claimed by a longer or stronger alias. A mask keeps the overlap
        # test proportional to the match's length, so a scan is linear in the text (a list
        # of taken spans made it quadratic in the number of matches).
        taken = bytearray(len(lowered))
        found: dict[str, Mention] = {}
        for strong, table in ((True, self._strong_patterns), (False, self._weak)):
            for term, literal, pattern in table:
                if literal not in lowered:
                    continue
                for match in pattern.finditer(lowered):
                    start, end = match.span()
                    if start == end or any(taken[start:end]):
                        continue
                    taken[start:end] = b"\x01" * (end - start)
                    known = found.get(term.name)
                    if known is None or (strong and not known.strong):
                        found[term.name] = Mention(term, start, strong)
        return sorted(found.values(), key=lambda m: m.start)

    def subjects(self, text: str, hints: bool = False) -> frozenset[str]:
        """The objects and components the text is about: named ("Service 对象"), or with
        `hints` also only hinted at by a related word ("机器" for Node)."""
        return frozenset(
            m.term.name
            for m in self.mentions(text)
            if (m.strong or hints) and not m.term.word
        )

    def names_all(self, text: str, names: Iterable[str]) -> bool:
        """Whether the text names every one of these terms by a Latin-script name
        ("Service", "svc"). Chinese aliases do not count: prose about Ingress says 服务
        all the time without being about Service."""
        lowered = text.lower()
        return all(
            any(p.search(lowered) for p in self._latin.get(name, ())) for name in names
        )

    def kinds(self, text: str) -> list[str]:
        """Kubernetes kinds the text names explicitly (English or Chinese)."""
        return [m.term.name for m in self.mentions(text) if m.term.is_kind and m.strong]

    def expansion(self, text: str) -> list[str]:
        """Extra words for the keyword query: canonical names and Chinese names of terms."""
        words: list[str] = []
        for mention in self.mentions(text):
            term = mention.term
            words.append(term.name)
            words.extend(a for a in term.aliases if not a.isascii())
        return words
