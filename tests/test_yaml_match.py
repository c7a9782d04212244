"""Which YAML examples go with an answer."""

from __future__ import annotations

from indexer.types import YamlExample
from service.glossary import Glossary
from service.query import QueryAnalysis, read_asks
from service.yaml_match import match_examples


def example(kind: str) -> YamlExample:
    return YamlExample(
        source="notes.md", lines=(1, 2), yaml=f"kind: {kind}\n", valid=True, kind=kind,
        api_version="v1", name=f"my-{kind.lower()}",
    )


EXAMPLES = [example("Service"), example("Ingress"), example("Deployment")]
EXAMPLE_CHUNK = [2, 5, 7]  # the chunk row each example sits in
CHUNK_EXAMPLES = {2: [0], 5: [1], 7: [2]}


def kinds(question: str, named: list[str], hit_rows: list[int]) -> list[str | None]:
    query = QueryAnalysis(
        text=question, language="zh", own_tokens=(), tokens=(),
        mentions=tuple(Glossary.load().mentions(question)), asks=read_asks(question), forms={},
    )
    assert list(query.kinds) == named
    matched = match_examples(query, hit_rows, EXAMPLES, EXAMPLE_CHUNK, CHUNK_EXAMPLES)
    return [m.example.kind for m in matched]


def test_a_named_kind_brings_its_example_even_from_outside_the_top_chunks() -> None:
    assert kinds("Ingress 有什么用？", ["Ingress"], [2, 3]) == ["Ingress"]
    assert kinds("Ingress 和 Service 的 YAML", ["Ingress", "Service"], [9]) == [
        "Ingress", "Service",
    ]


def test_an_example_request_without_a_kind_takes_the_retrieved_chunks_examples() -> None:
    assert kinds("给我一个示例", [], [7, 2]) == ["Deployment", "Service"]


def test_no_examples_of_other_kinds_than_the_one_named() -> None:
    # DaemonSet has no example in these notes; the Service manifest in the third chunk
    # answers nothing the user asked.
    assert kinds("DaemonSet 是什么？", ["DaemonSet"], [4, 6, 2]) == []
    assert kinds("DaemonSet 的 YAML 怎么写", ["DaemonSet"], [4, 6, 2]) == []


def test_nothing_unless_a_kind_is_named_or_an_example_asked_for() -> None:
    assert kinds("集群是怎么调度的？", [], [2, 5]) == []


def test_a_request_naming_no_kind_takes_the_kind_its_words_hint_at() -> None:
    # "定时" hints at CronJob, which has no example here: the retrieved chunks' examples
    # stand in. A declaration file ("声明文件") is a manifest.
    assert kinds("要定时跑一个任务，给个清单", [], [7, 2]) == ["Deployment", "Service"]
    assert kinds("来一份声明文件", [], [5]) == ["Ingress"]


def test_a_question_about_yaml_is_not_a_request_for_an_example() -> None:
    assert kinds("我提交的 YAML 是哪个组件校验的？", [], [7, 2]) == []
    assert kinds("还有那个的 YAML 吗？", [], [7]) == ["Deployment"]


def test_of_several_kinds_the_one_the_best_sections_hold_comes_first() -> None:
    # Both named; the best retrieved chunk holds the Ingress manifest.
    assert kinds("给个 Service 和 Ingress 的示例", ["Service", "Ingress"], [5, 2]) == [
        "Ingress", "Service",
    ]
