"""Extractive answers: pick the sentences of the top chunks that answer the question.

No text is generated: every answer sentence is copied from a note and carries the marker of
the citation it came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.retrieval import Hit

_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]*")
_DEFINITION = re.compile(r"^(定义|definition)\s*[：:]", re.IGNORECASE)
_ASKS_WHAT = re.compile(r"(是什么|什么是|是啥|啥是|what\s+is|what's|定义|介绍|解释|explain)", re.I)
_ASKS_DIFF = re.compile(r"(区别|不同|差异|对比|vs\.?|versus|difference|compare)", re.I)
# A lone label ("示例：", "功能和作用：") says nothing on its own.
_LABEL_ONLY = re.compile(r"^[^。！？!?]{0,12}[：:]$")


@dataclass(frozen=True)
class Sentence:
    text: str
    line: int
    hit_rank: int  # 0 = best chunk
    order: int  # position inside the chunk
    citation: int


@dataclass(frozen=True)
class ScoredSentence:
    sentence: Sentence
    score: float


def sentences_of(hit: Hit, hit_rank: int, citation: int) -> list[Sentence]:
    """Prose sentences of a chunk with their source lines; code blocks are skipped."""
    result: list[Sentence] = []
    for text, number in hit.chunk.prose_lines():
        for match in _SENTENCE.finditer(text):
            piece = match.group(0).strip()
            if len(piece) >= 4 and not _LABEL_ONLY.match(piece):
                result.append(Sentence(piece, number, hit_rank, len(result), citation))
    return result


def score_sentences(
    question: str,
    query_tokens: Sequence[str],
    sentences: Sequence[Sentence],
    tokenize: Callable[[str], list[str]],
    idf: Callable[[str], float],
    mentioned: Sequence[str] = (),
) -> list[ScoredSentence]:
    """Lexical relevance (idf-weighted query coverage) plus priors from the chunk's rank."""
    weights = {t: idf(t) for t in dict.fromkeys(query_tokens)}
    total = sum(weights.values()) or 1.0
    asks_what = bool(_ASKS_WHAT.search(question))
    asks_diff = bool(_ASKS_DIFF.search(question))
    lowered_mentions = [m.lower() for m in mentioned]
    scored = []
    for s in sentences:
        tokens = set(tokenize(s.text))
        coverage = sum(w for t, w in weights.items() if t in tokens) / total
        score = coverage
        score += 0.35 / (1 + s.hit_rank)  # the retriever's judgement of the chunk
        score += 0.1 / (1 + s.order)  # first sentences of a section summarise it
        if (asks_what or asks_diff) and _DEFINITION.match(s.text):
            score += 0.25
        if lowered_mentions and any(m in s.text.lower() for m in lowered_mentions):
            score += 0.1
        scored.append(ScoredSentence(s, score))
    return scored


def compose(
    scored: Sequence[ScoredSentence],
    max_chars: int,
    max_sentences: int = 4,
    min_share: float = 0.55,
) -> list[Sentence]:
    """Best sentences within the length limit, then put back in reading order."""
    if not scored:
        return []
    ranked = sorted(scored, key=lambda s: -s.score)
    best = ranked[0].score
    chosen: list[Sentence] = []
    used = 0
    seen: set[str] = set()
    for item in ranked:
        if len(chosen) >= max_sentences:
            break
        if chosen and item.score < best * min_share:
            break
        text = item.sentence.text
        if text in seen:
            continue
        cost = len(text) + len(f"[{item.sentence.citation}]")
        if used + cost > max_chars:
            if not chosen:
                # Even the best sentence is too long: cut it at a clause boundary.
                chosen.append(_truncate(item.sentence, max_chars - 4))
                break
            continue
        chosen.append(item.sentence)
        seen.add(text)
        used += cost
    return sorted(chosen, key=lambda s: (s.hit_rank, s.line, s.order))


def _truncate(sentence: Sentence, limit: int) -> Sentence:
    text = sentence.text[:limit]
    cut = max(text.rfind("，"), text.rfind(","), text.rfind("、"))
    if cut > limit // 2:
        text = text[:cut]
    return Sentence(text + "…", sentence.line, sentence.hit_rank, sentence.order,
                    sentence.citation)


def render(sentences: Sequence[Sentence]) -> str:
    return "".join(f"{s.text}[{s.citation}]" for s in sentences)


def idf_table(documents: Sequence[frozenset[str]]) -> Callable[[str], float]:
    n = len(documents)
    df: dict[str, int] = {}
    for doc in documents:
        for token in doc:
            df[token] = df.get(token, 0) + 1

    def idf(token: str) -> float:
        return math.log(1 + (n - df.get(token, 0) + 0.5) / (df.get(token, 0) + 0.5))

    return idf
