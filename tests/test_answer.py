"""Answer composition: sentences from sections about other objects give way."""

from __future__ import annotations

import pytest

from service.answer import AnswerWeights, Sentence, off_topic, score_sentences
from service.glossary import Glossary
from service.query import QueryAnalysis, read_asks


def analysis(text: str, tokens: list[str]) -> QueryAnalysis:
    glossary = Glossary.load()
    return QueryAnalysis(
        text=text, language="zh", own_tokens=tuple(tokens), tokens=tuple(tokens),
        mentions=tuple(glossary.mentions(text)), asks=read_asks(text), forms={},
    )


def test_a_heading_names_what_its_section_is_about() -> None:
    glossary = Glossary.load()
    assert glossary.subjects("Service 对象") == {"Service"}
    assert glossary.subjects("ClusterRole 和 ClusterRoleBinding") >= {"ClusterRole"}
    assert glossary.subjects("总结") == frozenset()
    # A question may only hint at an object; a heading has to name it.
    assert "Node" not in glossary.subjects("机器要维护了怎么办？")
    assert "Node" in glossary.subjects("机器要维护了怎么办？", hints=True)


def test_sections_about_other_objects_are_off_topic() -> None:
    daemonset, ingress = frozenset({"DaemonSet"}), frozenset({"Ingress"})
    summary: frozenset[str] = frozenset()
    # The question names DaemonSet: the Ingress section answers something else; a section
    # whose heading names nothing ("总结") is never judged.
    assert off_topic(frozenset({"DaemonSet"}), [daemonset, ingress, summary]) == {1}
    # A question that names no object ("每台节点都要跑一个日志 agent，用啥对象？") is about
    # whatever the best chunk is about.
    assert off_topic(frozenset(), [daemonset, ingress, daemonset]) == {1}
    # A comparison wants both objects' sections.
    assert off_topic(frozenset({"DaemonSet", "Ingress"}), [daemonset, ingress]) == set()
    assert off_topic(frozenset(), [summary, ingress]) == set()


def test_off_topic_sentences_score_lower_by_the_penalty() -> None:
    weights = AnswerWeights()
    same_text = [
        Sentence("作用：常用于集群中每个节点上都需要运行的任务。", line=1, hit_rank=rank,
                 order=0, citation=rank + 1, dense=0.9)
        for rank in (1, 2)
    ]
    scored = score_sentences(
        analysis("用什么对象？", ["对象"]), same_text, lambda text: list(text),
        lambda token: 1.0, weights_=weights, off_topic={1},
    )
    # Rank 1 is off topic; rank 2 is not. Without the penalty rank 1 would win on rank prior.
    prior_gap = weights.rank_prior / 2 - weights.rank_prior / 3
    assert scored[1].score - scored[0].score == pytest.approx(weights.off_topic_penalty - prior_gap)


def test_only_the_asked_objects_definition_gets_the_definition_bonus() -> None:
    weights = AnswerWeights()
    definitions = [
        Sentence("定义：这是一个对象。", line=1, hit_rank=rank, order=0, citation=rank + 1,
                 dense=0.9)
        for rank in (1, 2)
    ]
    scored = score_sentences(
        analysis("DaemonSet 是什么？", ["daemonset"]), definitions, lambda text: list(text),
        lambda token: 1.0, weights_=weights, off_topic={1},
    )
    prior_gap = weights.rank_prior / 2 - weights.rank_prior / 3
    assert scored[1].score - scored[0].score == pytest.approx(
        weights.off_topic_penalty + weights.definition_bonus - prior_gap
    )


def test_sentences_from_other_sections_must_come_closer_to_the_best() -> None:
    from service.answer import ScoredSentence, compose

    def scored(text: str, citation: int, score: float) -> ScoredSentence:
        return ScoredSentence(Sentence(text, line=citation, hit_rank=citation - 1, order=0,
                                       citation=citation), score)

    best = scored("StatefulSet 为每个 Pod 保留稳定的标识。", 1, 1.0)
    same = scored("StatefulSet 按顺序创建 Pod。", 2, 0.6)
    other = scored("DaemonSet 在每个节点上运行一个 Pod。", 3, 0.6)
    sections = {1: "StatefulSet", 2: "StatefulSet", 3: "DaemonSet"}
    chosen = compose([best, same, other], 300, AnswerWeights(),
                     section_of=lambda s: sections[s.citation])
    # Both score 0.6 of the best; only the one from the best sentence's own section stays.
    assert [s.citation for s in chosen] == [1, 2]


def test_a_list_the_question_asks_for_outranks_weaker_sentences() -> None:
    from service.answer import ScoredSentence, compose

    def scored(text: str, citation: int, order: int, score: float) -> ScoredSentence:
        return ScoredSentence(Sentence(text, line=order, hit_rank=citation - 1, order=order,
                                       citation=citation), score)

    best = scored("Service 能通过多种类型实现不同的访问方式。", 1, 0, 1.0)
    weaker = scored("定义：Service 是一组 Pod 的抽象，也定义了访问它们的方式。", 2, 0, 0.9)
    lead_in = scored("Service 有多种类型：", 3, 0, 0.8)
    items = [scored(f"类型{i}：这是第 {i} 种类型的说明文字。", 3, i, 0.1) for i in range(1, 5)]
    chosen = compose([best, weaker, lead_in, *items], 140, AnswerWeights(), wants_list=True)
    # Every item fits once the weaker sentence gives way; the best one stays.
    assert [s.text for s in chosen if s.citation == 3][1:] == [s.sentence.text for s in items]
    assert best.sentence in chosen and weaker.sentence not in chosen
