import pytest

from service.followup import Turn, rewrite
from service.glossary import Glossary


@pytest.fixture(scope="module")
def glossary() -> Glossary:
    return Glossary.load()


def conversation(*user_turns: str) -> list[Turn]:
    turns = []
    for text in user_turns:
        turns += [Turn("user", text), Turn("assistant", "……")]
    return turns


@pytest.mark.parametrize(
    ("history", "question", "expected"),
    [
        (["Ingress 是什么？"], "它和 Ingress Controller 有什么区别？",
         "Ingress 和 Ingress Controller 有什么区别？"),
        (["Service 有哪几种？"], "给我一个它的 YAML", "给我一个 Service 的 YAML"),
        (["StatefulSet 适合什么场景？"], "那 DaemonSet 呢？", "DaemonSet 适合什么场景？"),
        (["什么是 ConfigMap"], "怎么在 Pod 里使用？", "怎么在 Pod 里使用？"),
        (["Secret 是干嘛的"], "有什么作用？", "Secret 有什么作用？"),
        (["Deployment 是什么？"], "what about it?", "what about Deployment?"),
        ([], "它是什么？", "它是什么？"),
    ],
)
def test_follow_ups_become_standalone(
    glossary: Glossary, history: list[str], question: str, expected: str
) -> None:
    assert rewrite(question, conversation(*history), glossary) == expected


def test_standalone_questions_are_left_alone(glossary: Glossary) -> None:
    history = conversation("Ingress 是什么？")
    assert rewrite("Pod 和容器是什么关系？", history, glossary) == "Pod 和容器是什么关系？"


def test_kinds_are_recognised_in_chinese_and_english(glossary: Glossary) -> None:
    assert glossary.kinds("给我一个部署的 YAML") == ["Deployment"]
    assert glossary.kinds("秘钥怎么配置") == ["Secret"]
    assert glossary.kinds("定时任务的例子") == ["CronJob"]
    assert glossary.kinds("ingress 和 service 的区别") == ["Ingress", "Service"]
    assert glossary.kinds("users and groups") == []  # no "rs" inside "users"
    assert glossary.kinds("rs 和 ds") == ["ReplicaSet", "DaemonSet"]
