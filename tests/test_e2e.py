"""End to end: `notesqa serve` in a subprocess (real uvicorn on loopback, real default model,
real FAISS), asked over HTTP like a user would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, NOTES
from tests.servers import notesqa_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    default_model_dir: Path,
) -> Iterator[str]:
    """`notesqa serve` on the shipped notes, on each search backend (Milvus: milvus-lite in
    the server's folder, indexed by the server's own first build)."""
    work = tmp_path_factory.mktemp(f"e2e-{request.param}")
    env = {"NOTESQA_MILVUS_URI": str(work / "milvus.db")} if request.param == "milvus" else {}
    with notesqa_server(work, env) as base:
        assert httpx.get(f"{base}/readyz").json()["backend"] == request.param
        yield base


def ask(base: str, question: str, **extra: object) -> dict:  # type: ignore[type-arg]
    r = httpx.post(f"{base}/ask", json={"question": question, **extra}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# (question, a heading expected on one of the top-3 citations, a phrase expected in the answer)
QUESTIONS = [
    ("数据库密码应该放在哪里？", "Secret", "敏感信息"),
    ("Ingress 和 Service 有什么区别？", "总结", "Ingress对象"),
    ("Ingress Controller 是做什么的？", "Ingress Controller", "负载均衡器"),
    ("什么是 Pod？", "Pod", "最小"),
    ("Deployment 有什么作用？", "Deployment", "滚动更新"),
    ("StatefulSet 适合什么场景？", "StatefulSet", "数据库"),
    ("DaemonSet 用来干什么？", "DaemonSet", "节点"),
    ("CronJob 是什么？", "CronJob", "周期性任务"),
    ("一次性的批处理任务用什么对象？", "Job", "一次性"),
    ("ConfigMap 存什么数据？", "ConfigMap", "非机密数据"),
    ("PV 和 PVC 是什么关系？", "PersistentVolumeClaim (PVC)", "存储请求"),
    ("Namespace 有什么用？", "Namespace", "虚拟集群"),
    ("RoleBinding 是干什么的？", "Role 和 RoleBinding", "绑定"),
    ("Service 有哪几种类型？", "Service 对象", "NodePort"),
    ("四层代理和七层代理有什么区别？", "四层代理 vs 七层代理", "传输层"),
    ("kube-proxy 负责什么？", "Kubernetes中的组件与对象的关系", "网络规则"),
    ("etcd 在集群里做什么？", "Kubernetes中的组件与对象的关系", "键值存储"),
    ("调度器的作用是什么？", "Kubernetes中的组件与对象的关系", "合适的节点"),
    ("Node、Pod 和容器之间是什么关系？", "关系", "一个Pod可以包含"),
    ("怎么启动 minikube？", "启动minnikube 命令", "minikube start"),
    ("Kubernetes 有哪些主要作用？", "Kubernetes的主要作用包括：", "弹性伸缩"),
    ("Kubernetes 对象和组件有什么区别？", "k8s 对象和组件的区别", "配置实体"),
    # English questions, found through the dictionary's translations (validates -> 验证).
    (
        "Which component handles REST API requests and validates objects?",
        "Kubernetes中的组件与对象的关系",
        "处理REST API请求",
    ),
    (
        "What should I use for a one-off batch task that runs to completion?",
        "Job",
        "一次性任务",
    ),
]

YAML_QUESTIONS = [
    ("给我一个 Deployment 的 YAML", "Deployment"),
    ("service yaml 怎么写", "Service"),
    ("Ingress 配置示例", "Ingress"),
    ("Pod 的示例配置文件", "Pod"),
]

UNANSWERABLE = [
    "Kafka 分区重平衡是怎么触发的？",
    "Terraform 怎么创建一个 VPC？",
    "今天北京天气怎么样？",
    "怎么用 Spring Boot 写一个 REST 接口？",
    "How do I configure a liveness probe for my pod?",
]


@pytest.mark.parametrize(("question", "heading", "phrase"), QUESTIONS)
def test_answers_cite_the_expected_section(
    server: str, question: str, heading: str, phrase: str
) -> None:
    body = ask(server, question)
    assert body["found"], body
    headings = [c["heading"][-1] for c in body["citations"][:3]]
    assert heading in headings, headings
    assert phrase in body["answer"], body["answer"]
    # Every sentence ends with a marker that points at a returned citation.
    ids = {c["id"] for c in body["citations"]}
    sentences = re.findall(r"[^\]]+?\[(\d+)\]", body["answer"])
    assert sentences and {int(s) for s in sentences} <= ids
    assert len(body["answer"]) <= 300
    lines = (NOTES.read_text("utf-8").split("\n"))
    for citation in body["citations"]:
        start, end = citation["lines"]
        cited = "".join(lines[start - 1 : end])
        assert cited.strip()


@pytest.mark.parametrize(
    ("question", "off_topic_text"),
    [
        # The 2nd and 3rd chunks are about neighbouring objects; their lines used to pad
        # these answers.
        ("StatefulSet 适合什么场景？", "ReplicaSet"),
        ("PersistentVolume 是什么？", "StatefulSet"),
        ("Role 和 RoleBinding 分别是什么？", "这些对象共同构成"),
        # A what-is question favours definitions, but only the asked object's.
        ("DaemonSet 是什么？", "StatefulSet"),
    ],
)
def test_answers_stay_on_the_object_asked_about(
    server: str, question: str, off_topic_text: str
) -> None:
    body = ask(server, question)
    assert body["found"], body
    assert off_topic_text not in body["answer"], body["answer"]


def test_no_manifest_of_an_unrelated_kind(server: str) -> None:
    # The question names Node (节点) and the answer is DaemonSet; neither has an example in
    # the notes. A Service manifest sits in the third chunk and used to be attached.
    body = ask(server, "每个节点都要跑一个监控代理，用什么对象？")
    assert body["found"] and "DaemonSet" in body["answer"]
    assert body["yaml_examples"] == []


def test_a_bare_manifest_does_not_outrank_the_explanation(server: str) -> None:
    # "Pods" pulls the Pod manifest close on dense similarity; it shows, it does not say
    # which component validates anything.
    body = ask(server, "Which component validates objects like Pods?")
    assert body["citations"][0]["heading"][-1] == "Kubernetes中的组件与对象的关系"


def test_misspelt_kinds_still_bring_their_examples(server: str) -> None:
    body = ask(server, "ingres 和 servcie 有啥区别")
    assert {"Ingress", "Service"} <= {ex["kind"] for ex in body["yaml_examples"]}


@pytest.mark.parametrize(("question", "kind"), YAML_QUESTIONS)
def test_yaml_questions_return_that_kind_first(server: str, question: str, kind: str) -> None:
    body = ask(server, question)
    assert body["yaml_examples"], body
    first = body["yaml_examples"][0]
    assert first["kind"] == kind
    assert first["valid"] and f"kind: {kind}" in first["yaml"]
    cited = {c["id"]: c for c in body["citations"]}[first["citation"]]
    start, end = cited["lines"]
    source = NOTES.read_text("utf-8").split("\n")
    assert f"kind: {kind}" in "\n".join(source[start - 1 : end])


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_questions_the_notes_do_not_answer_are_declined(server: str, question: str) -> None:
    body = ask(server, question)
    assert body["found"] is False, body["answer"]
    assert "没有找到" in body["answer"]
    assert body["citations"] == [] and body["yaml_examples"] == []


def test_follow_up_uses_history(server: str) -> None:
    history = [
        {"role": "user", "content": "StatefulSet 适合什么场景？"},
        {"role": "assistant", "content": "适用于需要持久存储和有序部署、更新的应用。[1]"},
    ]
    body = ask(server, "那 DaemonSet 呢？", history=history)
    assert "DaemonSet" in body["rewritten_query"]
    assert body["citations"][0]["heading"][-1] == "DaemonSet"


@pytest.mark.parametrize(
    "payload",
    [
        {"question": ""},
        {"question": "   "},
        {"question": "x" * 2001},
        {"question": "Pod", "top_k": 0},
        {"question": "Pod", "top_k": 11},
        {"question": "Pod", "mode": "fuzzy"},
    ],
)
def test_bad_input_over_http(server: str, payload: dict) -> None:  # type: ignore[type-arg]
    r = httpx.post(f"{server}/ask", json=payload, timeout=10)
    assert r.status_code == 422
    assert r.json()["message"].startswith("请求参数有误")


def test_malformed_json_over_http(server: str) -> None:
    r = httpx.post(
        f"{server}/ask", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert "JSON" in r.json()["message"]


def test_modes_and_notes_endpoint(server: str) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        body = ask(server, "Secret 是什么？", mode=mode)
        assert body["citations"][0]["heading"][-1] == "Secret"
    citation = ask(server, "Secret 是什么？")["citations"][0]
    r = httpx.get(f"{server}{citation['url'].split('#')[0]}")
    assert r.status_code == 200
    start, end = citation["lines"]
    assert "Secret" in "\n".join(r.text.split("\n")[start - 1 : end])
