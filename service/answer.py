"""Extractive answers: pick the sentences of the top chunks that answer the question.

No text is generated: every answer sentence is copied from a note and carries the marker of
the citation it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from indexer.sentences import SentenceRecord
from service.query import QueryAnalysis
from service.retrieval import Hit


@dataclass(frozen=True)
class AnswerWeights:
    """How sentences are scored and picked (tuned on tests/eval, see README)."""

    dense_weight: float = 1.5  # similarity of the sentence to the question
    dense_floor: float = 0.75  # e5 similarities live in a narrow band; stretch from here
    coverage_weight: float = 0.5  # idf-weighted share of the question's words
    rank_prior: float = 0.1  # the retriever's judgement of the sentence's chunk
    order_prior: float = 0.1  # the first sentences of a section summarise it
    definition_bonus: float = 0.25  # "定义：" lines, for what-is and difference questions
    mention_bonus: float = 0.1  # the sentence names the object asked about
    off_topic_penalty: float = 0.3  # the sentence's section is about another object
    min_share: float = 0.4  # keep sentences scoring at least this share of the best
    # The same, for sentences from another section than the best sentence's: they drift
    # to neighbouring objects, so they must come closer to the best. 0.75 was picked on
    # dev-notes (answer precision 0.37 -> 0.50, hit rate unchanged) and dev-handbook
    # (0.36 -> 0.41); 0.85 and 1.0 cost notes.jsonl 1.4 and 6.5 points.
    other_section_share: float = 0.75
    max_sentences: int = 5

_DEFINITION = re.compile(r"^(定义|definition)\s*[：:]", re.IGNORECASE)
# A sentence that points back ("集群内的其他Pod可以通过这个IP地址…") needs its predecessor.
_REFERS_BACK = re.compile(r"^[^，,]{0,20}?(这个|这些|这种|该|此|上述|上面的|它们|它)")


@dataclass(frozen=True)
class Sentence:
    text: str
    line: int
    hit_rank: int  # 0 = best chunk
    order: int  # position inside the chunk
    citation: int
    dense: float | None = None  # cosine similarity to the question


@dataclass(frozen=True)
class ScoredSentence:
    sentence: Sentence
    score: float


def sentences_of(
    hit: Hit, hit_rank: int, citation: int, records: Sequence[SentenceRecord],
    similarities: Sequence[float] | None,
) -> list[Sentence]:
    """The chunk's indexed sentences, with the question's similarity to each."""
    return [
        Sentence(
            r.text, r.line, hit_rank, r.order, citation,
            None if similarities is None else float(similarities[i]),
        )
        for i, r in enumerate(records)
    ]


def score_sentences(
    query: QueryAnalysis,
    sentences: Sequence[Sentence],
    tokenize: Callable[[str], Collection[str]],
    idf: Callable[[str], float],
    weights_: AnswerWeights | None = None,
    off_topic: Collection[int] = (),
) -> list[ScoredSentence]:
    """Relevance of each sentence: dense similarity to the question (when available) and
    idf-weighted coverage of the question's words, plus priors from the chunk's rank."""
    w = weights_ or AnswerWeights()
    weights = {t: idf(t) for t in dict.fromkeys(query.tokens)}
    total = sum(weights.values()) or 1.0
    asks_what = query.asks_definition
    asks_diff = query.asks_difference
    lowered_mentions = [m.lower() for m in query.named]
    scored = []
    for s in sentences:
        tokens = tokenize(s.text)
        coverage = sum(w for t, w in weights.items() if t in tokens) / total
        score = coverage * w.coverage_weight
        if s.dense is not None:
            score += max(0.0, (s.dense - w.dense_floor) / (1 - w.dense_floor)) * w.dense_weight
        score += w.rank_prior / (1 + s.hit_rank)
        score += w.order_prior / (1 + s.order)
        if (asks_what or asks_diff) and _DEFINITION.match(s.text) and s.hit_rank not in off_topic:
            # Only the asked object's definition: "DaemonSet 是什么？" is not answered by
            # StatefulSet's.
            score += w.definition_bonus
        if lowered_mentions and any(m in s.text.lower() for m in lowered_mentions):
            score += w.mention_bonus
        if s.hit_rank in off_topic:
            score -= w.off_topic_penalty
        scored.append(ScoredSentence(s, score))
    return scored


def off_topic(wanted: frozenset[str], subjects: Sequence[frozenset[str]]) -> set[int]:
    """Ranks of the chunks whose section is about other objects than the question asks
    about: their sentences answer another question ("用啥对象" answered from DaemonSet, then
    from the Ingress section). `subjects` are the objects each chunk's heading names, best
    chunk first; a question that names no object is about the best chunk's."""
    wanted = wanted or (subjects[0] if subjects else frozenset())
    if not wanted:
        return set()
    return {
        rank
        for rank, names in enumerate(subjects)
        if rank and names and not names & wanted
    }


def compose(
    scored: Sequence[ScoredSentence],
    max_chars: int,
    weights: AnswerWeights | None = None,
    list_section: Sequence[int] = (),
    section_of: Callable[[Sentence], object] | None = None,
    wants_list: bool = False,
) -> list[Sentence]:
    """Best sentences within the length limit, then put back in reading order.

    A chosen sentence that announces a list ("有多种类型：") brings the list's items along,
    as far as they fit: the items are the answer, the announcement only introduces it."""
    if not scored:
        return []
    if list_section:
        # The question asks for a list its section announces: give the items in order.
        items = sorted(
            (s.sentence for s in scored if s.sentence.citation in list_section),
            key=lambda s: (s.line, s.order),
        )
        listed: list[Sentence] = []
        used_chars = 0
        for sentence in items:
            size = len(sentence.text) + len(f"[{sentence.citation}]")
            if used_chars + size > max_chars:
                break
            listed.append(sentence)
            used_chars += size
        if listed:
            return listed
    w = weights or AnswerWeights()
    ranked = sorted(scored, key=lambda s: -s.score)
    by_position = {(s.sentence.citation, s.sentence.order): s.sentence for s in scored}
    best = ranked[0].score
    chosen: list[Sentence] = []
    used = 0
    seen: set[tuple[int, int]] = set()
    texts: set[str] = set()

    def cost(sentence: Sentence) -> int:
        return len(sentence.text) + len(f"[{sentence.citation}]")

    limit = w.max_sentences
    score_of = {(s.sentence.citation, s.sentence.order): s.score for s in scored}
    best_section = section_of(ranked[0].sentence) if section_of else None
    for item in ranked:
        if len(chosen) >= limit:
            break
        if chosen and item.score < best * w.min_share:
            break
        sentence = item.sentence
        if (
            chosen
            and section_of is not None
            and section_of(sentence) != best_section
            and item.score < best * w.other_section_share
        ):
            continue
        if sentence.text in texts or (sentence.citation, sentence.order) in seen:
            continue
        if used + cost(sentence) > max_chars:
            if not chosen:
                # Even the best sentence is too long: cut it at a clause boundary.
                chosen.append(_truncate(sentence, max_chars - 4))
                break
            continue
        previous = by_position.get((sentence.citation, sentence.order - 1))
        if (
            _REFERS_BACK.match(sentence.text)
            and previous is not None
            and (previous.citation, previous.order) not in seen
            and used + cost(sentence) + cost(previous) <= max_chars
        ):
            # "这个IP地址…" means nothing without the sentence that introduced it.
            chosen.append(previous)
            seen.add((previous.citation, previous.order))
            texts.add(previous.text)
            used += cost(previous)
        chosen.append(sentence)
        seen.add((sentence.citation, sentence.order))
        texts.add(sentence.text)
        used += cost(sentence)
        if sentence.text.endswith(("：", ":")):
            following = sentence.order + 1
            while (sentence.citation, following) in by_position:
                item_sentence = by_position[(sentence.citation, following)]
                while wants_list and used + cost(item_sentence) > max_chars and len(chosen) > 2:
                    # The question asks for this list: its items outrank the weaker
                    # sentences chosen before it (never the best one or the lead-in).
                    others = [
                        c for c in chosen[1:]
                        if c.citation != sentence.citation or c.order < sentence.order
                    ]
                    if not others:
                        break
                    weakest = min(
                        others, key=lambda c: score_of.get((c.citation, c.order), 0.0)
                    )
                    chosen.remove(weakest)
                    seen.discard((weakest.citation, weakest.order))
                    used -= cost(weakest)
                if used + cost(item_sentence) > max_chars:
                    break
                if (sentence.citation, following) not in seen:
                    chosen.append(item_sentence)
                    seen.add((sentence.citation, following))
                    texts.add(item_sentence.text)
                    used += cost(item_sentence)
                following += 1
    return sorted(chosen, key=lambda s: (s.hit_rank, s.line, s.order))


def _truncate(sentence: Sentence, limit: int) -> Sentence:
    text = sentence.text[:limit]
    cut = max(text.rfind("，"), text.rfind(","), text.rfind("、"))
    if cut > limit // 2:
        text = text[:cut]
    return Sentence(text + "…", sentence.line, sentence.hit_rank, sentence.order,
                    sentence.citation, sentence.dense)


def render(sentences: Sequence[Sentence]) -> str:
    return "".join(f"{s.text}[{s.citation}]" for s in sentences)
