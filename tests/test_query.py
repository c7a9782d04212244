"""The question is read once, into a typed analysis every stage takes."""

from __future__ import annotations

import pytest

from indexer.bilingual import EnglishToChinese
from indexer.tokenization import Tokenizer
from service.glossary import Glossary
from service.query import QueryAnalyzer, read_asks


@pytest.fixture(scope="module")
def analyzer() -> QueryAnalyzer:
    vocabulary = {"验证", "对象", "组件", "service", "ingress", "deployment", "pod", "kubectl"}
    return QueryAnalyzer(
        Tokenizer(), Glossary.load(), vocabulary, EnglishToChinese.for_vocabulary(vocabulary)
    )


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("Ingress 和 Service 有什么区别？", {"difference"}),
        ("What is the difference between a Pod and a container?", {"difference", "definition"}),
        ("Deployment 是什么？", {"definition"}),
        ("Service 有哪几种类型？", {"list"}),
        ("给我一个 Deployment 的 YAML", {"example"}),
        ("给我一份部署清单", {"example"}),
        ("声明文件怎么写？", {"example", "howto"}),
        ("Show me a manifest for exposing my app", {"example"}),
        ("还有 Service 的 YAML 吗？", {"example"}),
        # A question about YAML is not a request for one.
        ("我提交上去的 YAML 是哪个组件在做校验的？", set()),
        ("kubelet 的配置文件在哪里？", set()),
        ("删除 ReplicaSet 用什么命令？", {"command", "howto"}),
        ("怎么查看 Pod 的日志？", {"howto"}),
        ("How do I roll back a deployment?", {"howto"}),
        # How something works is an explanation, not a task.
        ("Service 是如何工作的？", set()),
        ("How does a Service route traffic?", set()),
    ],
)
def test_what_a_question_asks_for(question: str, asks: set[str]) -> None:
    assert read_asks(question) == asks


def test_the_analysis_names_language_objects_and_kinds(analyzer: QueryAnalyzer) -> None:
    query = analyzer.analyze("Which component validates objects?")
    assert query.english
    assert "验证" in query.tokens and "验证" not in query.own_tokens
    assert "验证" in query.forms["validates"]

    chinese = analyzer.analyze("ingres 和 servcie 有啥区别")
    assert not chinese.english
    assert chinese.asks_difference
    # Misspelt names are read as the objects they name.
    assert {"Ingress", "Service"} <= chinese.subjects
    assert set(chinese.kinds) == {"Ingress", "Service"}


def test_a_request_naming_no_kind_takes_the_kinds_its_words_hint_at(
    analyzer: QueryAnalyzer,
) -> None:
    hinted = analyzer.analyze("要定时跑一个任务，给个清单")
    assert hinted.wants_example and not hinted.kinds
    assert "CronJob" in hinted.example_kinds
    # Not a request: nothing is inferred.
    assert analyzer.analyze("要定时跑一个任务").example_kinds == ()
