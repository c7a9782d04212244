"""What to write next: questions asked per day (every channel), the share answered, the
questions the notes could not answer (near-duplicates grouped) and the most down-voted answers.

Read from the feedback store, so it only knows what the retention setting let it keep.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from service.feedback import FeedbackStore

SOURCES = ("web", "slack", "api", "cli")
# Two questions are the same request when their character bigrams or their keywords
# (jieba, stopwords and question words removed) overlap at least this much (Jaccard).
BIGRAM_SIMILARITY = 0.5
KEYWORD_SIMILARITY = 0.6
MAX_UNANSWERED_SCANNED = 5_000

Keywords = Callable[[str], Iterable[str]]


@dataclass
class DayStats:
    day: str  # YYYY-MM-DD, server local time
    asked: int = 0
    answered: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    up: int = 0
    down: int = 0

    @property
    def share_answered(self) -> float | None:
        return self.answered / self.asked if self.asked else None


@dataclass
class UnansweredGroup:
    question: str  # the most asked wording
    count: int
    variants: list[str]  # other wordings, most asked first
    last_asked: float
    sources: dict[str, int]


@dataclass
class DownvotedAnswer:
    id: str
    question: str
    answer: str
    down: int
    up: int
    ts: float
    source: str
    cited: list[str]  # "file:start-end"


@dataclass
class Report:
    enabled: bool
    retention_days: int
    days: int
    since: str
    until: str
    per_day: list[DayStats]
    unanswered: list[UnansweredGroup]
    downvoted: list[DownvotedAnswer]

    @property
    def asked(self) -> int:
        return sum(d.asked for d in self.per_day)

    @property
    def answered(self) -> int:
        return sum(d.answered for d in self.per_day)

    @property
    def share_answered(self) -> float | None:
        return self.answered / self.asked if self.asked else None

    def by_source(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for day in self.per_day:
            total.update(day.by_source)
        return dict(total)

    def to_json(self) -> dict[str, Any]:
        def day(d: DayStats) -> dict[str, Any]:
            return {**asdict(d), "share_answered": _round(d.share_answered)}

        return {
            "enabled": self.enabled,
            "retention_days": self.retention_days,
            "days": self.days,
            "since": self.since,
            "until": self.until,
            "totals": {
                "asked": self.asked,
                "answered": self.answered,
                "share_answered": _round(self.share_answered),
                "by_source": self.by_source(),
                "up": sum(d.up for d in self.per_day),
                "down": sum(d.down for d in self.per_day),
            },
            "per_day": [day(d) for d in self.per_day],
            "unanswered": [asdict(g) for g in self.unanswered],
            "downvoted": [asdict(a) for a in self.downvoted],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def normalize(question: str) -> str:
    """Case, width, spaces and punctuation do not make a different question."""
    text = unicodedata.normalize("NFKC", question).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")


def bigrams(text: str) -> frozenset[str]:
    if len(text) < 2:
        return frozenset([text]) if text else frozenset()
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass
class _Form:
    text: str  # as first asked
    count: int
    last: float
    sources: Counter[str]
    grams: frozenset[str]
    words: frozenset[str]


def _similar(a: _Form, b: _Form) -> bool:
    return (
        jaccard(a.grams, b.grams) >= BIGRAM_SIMILARITY
        or jaccard(a.words, b.words) >= KEYWORD_SIMILARITY
    )


def group_questions(
    asks: Iterable[tuple[str, float, str]], keywords: Keywords, top: int = 10
) -> list[UnansweredGroup]:
    """Group (question, ts, source) rows into near-duplicate requests, most asked first.
    Greedy: each wording joins the first larger group it resembles (any member)."""
    forms: dict[str, _Form] = {}
    for question, ts, source in asks:
        key = normalize(question) or question
        form = forms.get(key)
        if form is None:
            form = forms[key] = _Form(
                question.strip(), 0, ts, Counter(), bigrams(key),
                frozenset(w for w in keywords(question) if w not in _QUESTION_WORDS),
            )
        form.count += 1
        form.last = max(form.last, ts)
        form.sources[source] += 1
    groups: list[list[_Form]] = []
    for form in sorted(forms.values(), key=lambda f: (-f.count, -f.last)):
        for group in groups:
            if any(_similar(form, member) for member in group):
                group.append(form)
                break
        else:
            groups.append([form])
    out = []
    for group in groups:
        sources: Counter[str] = Counter()
        for member in group:
            sources.update(member.sources)
        out.append(
            UnansweredGroup(
                question=group[0].text,
                count=sum(m.count for m in group),
                variants=[m.text for m in group[1:]],
                last_asked=max(m.last for m in group),
                sources=dict(sources),
            )
        )
    out.sort(key=lambda g: (-g.count, -g.last_asked))
    return out[:top]


# Words that make a question a question without saying what it is about.
_QUESTION_WORDS = frozenset(
    ["怎么", "怎样", "如何", "什么", "为什么", "哪些", "哪个", "哪里", "是", "的", "吗", "呢",
     "啊", "吧", "有", "用", "要", "能", "可以", "一个", "请问",
     "how", "what", "why", "which", "where", "is", "are", "do", "does", "can", "the", "a",
     "an", "to", "of"]
)


def _local_day(ts: float) -> date:
    return datetime.fromtimestamp(ts).date()


def build_report(
    store: FeedbackStore,
    keywords: Keywords,
    days: int = 14,
    now: float | None = None,
    top: int = 10,
) -> Report:
    """The last `days` days (today included, server local time)."""
    now = time.time() if now is None else now
    today = _local_day(now)
    first = today - timedelta(days=days - 1)
    since_ts = datetime.combine(first, datetime.min.time()).timestamp()
    per_day = {
        (first + timedelta(days=i)).isoformat(): DayStats((first + timedelta(days=i)).isoformat())
        for i in range(days)
    }
    report = Report(
        enabled=store.enabled,
        retention_days=store.retention_days,
        days=days,
        since=first.isoformat(),
        until=today.isoformat(),
        per_day=list(per_day.values()),
        unanswered=[],
        downvoted=[],
    )
    if not store.enabled:
        return report
    with store.connect() as db:
        for row in db.execute(
            "SELECT date(ts, 'unixepoch', 'localtime') AS day, source, COUNT(*) AS asked, "
            "SUM(found) AS answered FROM asks WHERE ts >= ? AND ts <= ? GROUP BY day, source",
            (since_ts, now),
        ):
            stats = per_day.get(row["day"])
            if stats is not None:
                stats.asked += row["asked"]
                stats.answered += row["answered"]
                stats.by_source[row["source"]] = row["asked"]
        for row in db.execute(
            "SELECT date(ts, 'unixepoch', 'localtime') AS day, SUM(vote = 1) AS up, "
            "SUM(vote = -1) AS down FROM votes WHERE ts >= ? AND ts <= ? GROUP BY day",
            (since_ts, now),
        ):
            stats = per_day.get(row["day"])
            if stats is not None:
                stats.up, stats.down = row["up"], row["down"]
        unanswered = db.execute(
            "SELECT question, ts, source FROM asks WHERE found = 0 AND ts >= ? AND ts <= ? "
            "ORDER BY ts DESC LIMIT ?",
            (since_ts, now, MAX_UNANSWERED_SCANNED),
        ).fetchall()
        downvoted = db.execute(
            "SELECT a.id, a.question, a.answer, a.ts, a.source, a.citations, "
            "SUM(v.vote = -1) AS down, SUM(v.vote = 1) AS up "
            "FROM asks a JOIN votes v ON v.ask_id = a.id WHERE a.ts >= ? AND a.ts <= ? "
            "GROUP BY a.id HAVING down > 0 ORDER BY down DESC, up ASC, a.ts DESC LIMIT ?",
            (since_ts, now, top),
        ).fetchall()
    report.unanswered = group_questions(
        ((r["question"], r["ts"], r["source"]) for r in unanswered), keywords, top
    )
    report.downvoted = [
        DownvotedAnswer(
            id=r["id"], question=r["question"], answer=r["answer"], down=r["down"], up=r["up"],
            ts=r["ts"], source=r["source"], cited=_cited(r["citations"]),
        )
        for r in downvoted
    ]
    return report


def _cited(citations_json: str) -> list[str]:
    try:
        citations = json.loads(citations_json)
    except ValueError:
        return []
    return [
        f"{c.get('source')}:{c['lines'][0]}-{c['lines'][1]}"
        for c in citations
        if isinstance(c, dict) and isinstance(c.get("lines"), list) and len(c["lines"]) == 2
    ]


def max_days(store: FeedbackStore) -> int:
    """Asking for more days than are kept would show empty days as if nobody asked."""
    return max(1, min(store.retention_days, 366)) if store.enabled else 1

