import pytest

from service.followup import MAX_TURNS, Reference, Turn, resolve, rewrite
from service.glossary import Glossary


@pytest.fixture(scope="module")
def glossary() -> Glossary:
    return Glossary.load()


def conversation(*user_turns: str) -> list[Turn]:
    turns = []
    for text in user_turns:
        turns += [Turn("user", text), Turn("assistant", "……")]
    return turns


# (earlier user turns, the follow-up, its standalone form)
CASES = {
    # 前者 / 后者: the first and the last of the objects compared.
    "latter": (["Ingress 和 Service 有什么区别？"], "后者有哪几种类型？", "Service 有哪几种类型？"),
    "former": (["Ingress 和 Service 有什么区别？"], "前者怎么配置 TLS？", "Ingress 怎么配置 TLS？"),
    "the latter": (["What is the difference between Ingress and Service?"],
                   "What types does the latter have?", "What types does Service have?"),
    "the former": (["Deployment vs StatefulSet?"], "When should I pick the former?",
                   "When should I pick Deployment?"),
    "前一个 alone": (["Ingress 和 Service 有什么区别？"], "前一个有哪些字段？",
                   "Ingress 有哪些字段？"),
    "前一个 before a noun is not a reference": (
        ["Deployment 是什么？"], "回滚到前一个版本用什么命令？",
        "Deployment 回滚到前一个版本用什么命令？"),
    "a comparison carries over a turn about one side": (
        ["Ingress 和 Service 有什么区别？", "后者有哪几种类型？"], "前者呢？",
        "Ingress 有哪几种类型？"),
    # 它 / 它们 / 它的 / 这个 / 这个对象 / 该资源: only the reference changes.
    "它": (["Ingress 是什么？"], "它和 Ingress Controller 有什么区别？",
          "Ingress 和 Ingress Controller 有什么区别？"),
    "它的": (["Service 有哪几种？"], "给我一个它的 YAML", "给我一个 Service 的 YAML"),
    "它们": (["Ingress 和 Service 有什么区别？"], "它们都需要写 YAML 吗？",
            "Ingress 和 Service 都需要写 YAML 吗？"),
    "这个": (["Deployment 是什么？"], "这个怎么用？", "Deployment 怎么用？"),
    "这个对象": (["Deployment 是什么？"], "这个对象怎么删除？", "Deployment 怎么删除？"),
    "该资源": (["Deployment 是什么？"], "该资源的 YAML 怎么写？", "Deployment 的 YAML 怎么写？"),
    "上面的": (["Deployment 是什么？"], "上面的 YAML 怎么改副本数？",
              "Deployment 的 YAML 怎么改副本数？"),
    "这个 before another noun is not a reference": (
        ["Deployment 是什么？"], "这个字段是什么意思？", "Deployment 这个字段是什么意思？"),
    "其它 is not 它": (["Deployment 是什么？"], "其它控制器有哪些？",
                      "Deployment 其它控制器有哪些？"),
    # Elliptical follow-ups: only objects re-ask the previous question; anything else is asked.
    "那 X 呢": (["StatefulSet 适合什么场景？"], "那 DaemonSet 呢？", "DaemonSet 适合什么场景？"),
    "X 呢": (["StatefulSet 适合什么场景？"], "DaemonSet 呢？", "DaemonSet 适合什么场景？"),
    "an alias is asked about by its name": (["StatefulSet 适合什么场景？"], "那 ds 呢？",
                                            "DaemonSet 适合什么场景？"),
    "two objects for two": (["Ingress 和 Service 有什么区别？"],
                            "那 Deployment 和 StatefulSet 呢？",
                            "Deployment 和 StatefulSet 有什么区别？"),
    "one object for a pair": (["Ingress 和 Service 有什么区别？"], "那 Pod 呢？",
                              "Pod 有什么区别？"),
    "还有 X 的 Y 吗": (["Deployment 是什么？"], "还有 Service 的 YAML 吗？", "Service 的 YAML"),
    "还有…吗 naming nothing": (["Deployment 是什么？"], "还有吗？", "Deployment 是什么？"),
    "它的 YAML 呢": (["Deployment 是什么？"], "它的 YAML 呢？", "Deployment 的 YAML"),
    "Y 呢": (["Deployment 是什么？"], "YAML 呢？", "Deployment 的 YAML"),
    "那 + a question of its own": (["Deployment 是什么？"], "那怎么扩容呢？",
                                   "Deployment 怎么扩容呢？"),
    "What about X": (["What is a StatefulSet used for?"], "What about DaemonSet?",
                     "What is a DaemonSet used for?"),
    "And X": (["What is a StatefulSet used for?"], "And DaemonSet?",
              "What is a DaemonSet used for?"),
    "How about X": (["StatefulSet 适合什么场景？"], "How about a DaemonSet?",
                    "DaemonSet 适合什么场景？"),
    "What about its Y": (["What is a Pod?"], "What about its lifecycle?", "Pod's lifecycle"),
    "What about the Y": (["What is a Pod?"], "What about the lifecycle?", "the lifecycle of Pod"),
    "what about it": (["Deployment 是什么？"], "what about it?", "Deployment 是什么？"),
    "And + a question of its own": (["What is a StatefulSet used for?"],
                                    "And how do I scale it?",
                                    "And how do I scale StatefulSet?"),
    # A request naming no object is about the previous subject.
    "用什么命令": (["Deployment 是什么？"], "用什么命令？", "Deployment 用什么命令？"),
    "给个它的示例": (["Deployment 是什么？"], "给个它的示例", "给个 Deployment 的示例"),
    "有什么作用": (["Secret 是干嘛的"], "有什么作用？", "Secret 有什么作用？"),
    "an English request": (["Deployment 是什么？"], "How do I roll out a new image?",
                           "Deployment: How do I roll out a new image?"),
    # English pronouns.
    "it": (["Deployment 是什么？"], "How do I scale it?", "How do I scale Deployment?"),
    "dummy it": (["Deployment 是什么？"], "Is it possible to scale it?",
                 "Is it possible to scale Deployment?"),
    "dummy it: a good idea": (["What is a DaemonSet?"], "Is it a good idea to run it on masters?",
                              "Is it a good idea to run DaemonSet on masters?"),
    "dummy it: worth": (["What is a StatefulSet?"], "Is it worth migrating to it?",
                        "Is it worth migrating to StatefulSet?"),
    "dummy it: true that": (["Deployment 是什么？"], "Is it true that it keeps old ReplicaSets?",
                            "Is it true that Deployment keeps old ReplicaSets?"),
    "it with no clause is referential": (["Secret 是什么？"], "Is it safe?", "Is Secret safe?"),
    "its": (["Deployment 是什么？"], "How do I check its status?",
            "How do I check Deployment's status?"),
    "they": (["Ingress 和 Service 有什么区别？"], "How do they route traffic?",
             "How do Ingress and Service route traffic?"),
    "them, one object named": (["What is a Pod?"], "How do I list them?", "How do I list Pod?"),
    "this as a pronoun": (["What is a ConfigMap?"], "How do I mount this in a Pod?",
                          "How do I mount ConfigMap in a Pod?"),
    "that as a pronoun": (["What is a ConfigMap?"], "What does that contain?",
                          "What does ConfigMap contain?"),
    "this + a generic noun": (["What is a ConfigMap?"], "Can you explain this object?",
                              "Can you explain ConfigMap?"),
    "this + a named object": (["What is a ConfigMap?"], "Does this Secret get mounted too?",
                              "Does this Secret get mounted too?"),
    "that as a conjunction": (["What is a Deployment?"], "I read that Pods restart on failure",
                              "I read that Pods restart on failure"),
    # Left alone.
    "names its own object": (["Ingress 是什么？"], "Pod 和容器是什么关系？",
                             "Pod 和容器是什么关系？"),
    "names its own object, with a place": (["什么是 ConfigMap"], "怎么在 Pod 里使用？",
                                           "怎么在 Pod 里使用？"),
    "the antecedent is in the question": (["Ingress 是什么？"], "Deployment 是什么，它怎么扩容？",
                                          "Deployment 是什么，它怎么扩容？"),
    "first turn": ([], "它是什么？", "它是什么？"),
    "first turn, elliptical": ([], "那 DaemonSet 呢？", "那 DaemonSet 呢？"),
    # Questions the notes cannot answer keep their content.
    "not in the notes": (["Deployment 是什么？"], "它支持 GPU 调度吗？",
                         "Deployment 支持 GPU 调度吗？"),
    "not in the notes, English": (["What is a Pod?"], "Can it run on Windows nodes?",
                                  "Can Pod run on Windows nodes?"),
    # Three turns: each is resolved from the standalone forms before it.
    "它 after 它的 YAML 呢": (["Deployment 是什么？", "它的 YAML 呢？"], "它怎么扩容？",
                            "Deployment 怎么扩容？"),
    "它 after 那 X 呢": (["StatefulSet 适合什么场景？", "那 DaemonSet 呢？"], "它的 YAML 呢？",
                        "DaemonSet 的 YAML"),
    "那 X 呢 after 那 X 呢": (["StatefulSet 适合什么场景？", "那 DaemonSet 呢？"], "那 Job 呢？",
                            "Job 适合什么场景？"),
    "它 after 后者": (["Ingress 和 Service 有什么区别？", "后者有哪几种类型？"], "它的 YAML 呢？",
                     "Service 的 YAML"),
    "a request after a request": (["Deployment 是什么？", "用什么命令创建？"], "那删除呢？",
                                  "Deployment 的删除"),
    "a new object ends a comparison": (["Ingress 和 Service 有什么区别？", "Pod 是什么？"],
                                       "后者呢？", "Pod 是什么？"),
}


@pytest.mark.parametrize(("history", "question", "expected"), CASES.values(), ids=CASES.keys())
def test_follow_ups_become_standalone(
    glossary: Glossary, history: list[str], question: str, expected: str
) -> None:
    assert rewrite(question, conversation(*history), glossary) == expected


def test_user_turns_are_preferred_to_answers(glossary: Glossary) -> None:
    history = [
        Turn("user", "Deployment 是什么？"),
        Turn("assistant", "Deployment 管理 ReplicaSet，ReplicaSet 再管理 Pod。"),
    ]
    assert rewrite("它怎么扩容？", history, glossary) == "Deployment 怎么扩容？"


def test_answers_are_the_last_resort(glossary: Glossary) -> None:
    history = [
        Turn("user", "有哪些常用的工作负载？"),
        Turn("assistant", "常用的有 Deployment、StatefulSet 和 DaemonSet。"),
    ]
    assert rewrite("它怎么扩容？", history, glossary) == "Deployment 怎么扩容？"
    assert rewrite("它们有什么区别？", history, glossary) == (
        "Deployment、StatefulSet 和 DaemonSet 有什么区别？"
    )
    # Without a reference, an answer's objects are not taken as the subject.
    assert rewrite("怎么扩容？", history, glossary) == "怎么扩容？"


def test_a_reference_with_nothing_to_refer_to_is_left_as_written(glossary: Glossary) -> None:
    history = [Turn("user", "你好"), Turn("assistant", "你好，请问有什么可以帮你？")]
    assert rewrite("它的 YAML 呢？", history, glossary) == "它的 YAML 呢？"


def test_only_the_last_turns_are_read(glossary: Glossary) -> None:
    history = conversation("Deployment 是什么？", *["随便聊聊"] * MAX_TURNS)
    assert rewrite("它怎么扩容？", history, glossary) == "它怎么扩容？"


def test_the_resolution_says_what_was_read(glossary: Glossary) -> None:
    resolution = resolve("后者的 YAML 呢？", conversation("Ingress 和 Service 有什么区别？"),
                         glossary)
    assert resolution.query == "Service 的 YAML"
    assert resolution.subjects == ("Service",)
    assert resolution.references == (Reference("后者", ("Service",)),)

    standalone = resolve("Pod 是什么？", conversation("Service 是什么？"), glossary)
    assert standalone.query == "Pod 是什么？"
    assert standalone.subjects == ("Pod",)
    assert standalone.references == ()



def test_what_about_a_name_the_glossary_does_not_know() -> None:
    glossary = Glossary.load()
    history = [Turn("user", "kube-scheduler 的日志在哪看？"), Turn("assistant", "…")]
    # Still another object: the previous question is asked about it.
    assert rewrite("那 kube-dns 的呢？", history, glossary) == "kube-dns 的日志在哪看？"
    # A request is not an object.
    assert rewrite("还有 YAML 吗？", history, glossary) == "kube-scheduler 的 YAML"


def test_the_one_before_and_the_one_after() -> None:
    glossary = Glossary.load()
    history = [Turn("user", "Ingress 和 Service 有什么区别？"), Turn("assistant", "…")]
    assert rewrite("后面这个一般用在哪？", history, glossary) == "Service 一般用在哪？"
    assert rewrite("前面那个怎么配置？", history, glossary) == "Ingress 怎么配置？"
