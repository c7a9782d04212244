"""Deciding whether the notes answer a question at all.

Dense similarity alone cannot tell: e5 scores "Kafka 分区重平衡" against Kubernetes notes
almost as high as a real question. What separates them is vocabulary. An unanswerable
question names things the notes never mention (Kafka, Terraform) or that the best sections
do not contain (MySQL in a page that only deploys it), while a real question, even in other
words or in English, maps onto the notes' words directly or through the glossary.

    confidence = dense_top + coverage_weight * coverage
                 - unknown_ascii_weight * (share of English words the corpus never uses)
                 - ascii_missing_weight * (share of known English words absent from the top chunks)
                 - missing_weight * (idf-weighted share of known words absent from the top chunks)

A question none of whose words the corpus or glossary knows ("今天天气怎么样？") is never
answered. Weights and thresholds were fitted on tests/eval (notes and handbook together).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from service.glossary import Glossary
from service.query import QueryAnalysis


@dataclass(frozen=True)
class AbstentionWeights:
    coverage: float = 0.1
    unknown_ascii: float = 0.6
    ascii_missing: float = 0.1
    missing: float = 0.0
    unknown_object: float = 0.5  # the question names an object the notes never mention
    # An everyday English word the notes cannot translate ("change" in an English
    # question) counts this much of an unknown name such as Terraform.
    ordinary_share: float = 0.5


@dataclass(frozen=True)
class Confidence:
    value: float
    dense_top: float | None
    coverage: float
    unknown_terms: tuple[str, ...]
    missing_terms: tuple[str, ...]  # known words the top chunks do not contain
    # What the decision is made from (see FEATURES), for calibration and debugging.
    features: tuple[float, ...] = ()


NEVER = -1.0


def object_names(glossary: Glossary) -> list[str]:
    """Every name of every glossary object: what the indexer looks up in the notes."""
    return [name for term in glossary.terms if not term.word
            for name in (term.name, *term.aliases)]


def absent_terms(glossary: Glossary, mentioned: Callable[[str], bool]) -> frozenset[str]:
    """Glossary objects the notes never mention under any of their names; `mentioned`
    answers for one lowercased name (from the index's names.json). Whole names, not
    tokens: jieba splits 网络策略 into the everyday 网络 + 策略."""
    return frozenset(
        term.name
        for term in glossary.terms
        if not term.word
        and not any(mentioned(name.lower()) for name in (term.name, *term.aliases))
    )


def unknown_objects(query: QueryAnalysis, absent: frozenset[str]) -> list[str]:
    """Objects the question names (NetworkPolicy, HPA) that the corpus never mentions:
    notes that never name a thing cannot explain it."""
    return [
        m.term.name
        for m in query.mentions
        if m.strong and not m.term.word and m.term.name in absent
    ]


def unknown_terms(
    forms: dict[str, frozenset[str]], vocabulary: Collection[str]
) -> list[str]:
    """Words of the question that neither the corpus nor the glossary knows."""
    return [token for token, names in forms.items() if not any(n in vocabulary for n in names)]


def _is_name(token: str) -> bool:
    # Plain English words and product names; "k8s" or "kube-proxy" are left out because
    # the notes often spell them differently ("Kubernetes", "Kube-proxy").
    return token.isascii() and token.isalpha()


def assess(
    forms: dict[str, frozenset[str]],
    dense_top: float | None,
    top_chunk_tokens: Sequence[Collection[str]],
    unknown: Sequence[str],
    idf: Callable[[str], float],
    weights: AbstentionWeights,
    unknown_objects: Sequence[str] = (),
    ordinary: Collection[str] = (),
    english_question: bool = False,
) -> Confidence:
    distinct = list(forms)
    unknown_set = set(unknown)
    known = [t for t in distinct if t not in unknown_set]
    if not distinct or not known or not top_chunk_tokens:
        return Confidence(NEVER, dense_top, 0.0, tuple(unknown), ())

    def present(token: str) -> bool:
        return any(name in chunk for chunk in top_chunk_tokens for name in forms[token])

    total_idf = sum(idf(t) for t in distinct) or 1.0
    coverage = max(
        sum(idf(t) for t in distinct if forms[t] & set(chunk)) / total_idf
        for chunk in top_chunk_tokens
    )
    missing = [t for t in known if not present(t)]
    known_idf = sum(idf(t) for t in known) or 1.0
    missing_share = sum(idf(t) for t in missing) / known_idf
    unknown_ascii = sum(
        weights.ordinary_share if t in ordinary else 1.0 for t in unknown if t.isascii()
    ) / len(distinct)
    known_ascii = [t for t in known if _is_name(t)]
    ascii_missing = (
        sum(1 for t in known_ascii if t in missing) / len(known_ascii) if known_ascii else 0.0
    )
    unknown_cjk = sum(1 for t in unknown if not t.isascii()) / len(distinct)
    rarest = max((idf(t) for t in known), default=1.0) or 1.0
    rarest_missing = max((idf(t) for t in missing), default=0.0) / rarest
    english = 1.0 if english_question else 0.0
    dense = dense_top if dense_top is not None else 0.0
    features = (
        dense, coverage, unknown_ascii, unknown_cjk, missing_share, ascii_missing,
        rarest_missing, 1.0 if unknown_objects else 0.0, english, english * dense,
    )
    value = (
        (dense_top if dense_top is not None else 0.0)
        + weights.coverage * coverage
        - weights.unknown_ascii * unknown_ascii
        - weights.ascii_missing * ascii_missing
        - weights.missing * missing_share
        - (weights.unknown_object if unknown_objects else 0.0)
    )
    return Confidence(
        round(value, 4), dense_top, round(coverage, 4), tuple(unknown), tuple(missing),
        features,
    )
