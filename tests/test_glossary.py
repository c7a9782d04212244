"""Glossary hygiene (service/data/glossary.yaml): aliases name their term and nothing else.

An alias decides which object a question is about and which YAML examples it gets, so a
word that only looks like a name ("设" inside 设计, 服务 inside 服务器, "cron" of Linux)
sends ordinary questions to the wrong object. `related` words only expand queries.
"""

from __future__ import annotations

import pytest

from service.glossary import Glossary, Mention


@pytest.fixture(scope="module")
def glossary() -> Glossary:
    return Glossary.load()


def test_no_alias_or_related_word_is_a_single_character(glossary: Glossary) -> None:
    short = [
        f"{term.name}: {word!r}"
        for term in glossary.terms
        for word in (*term.aliases, *term.related)
        if len(word.strip()) < 2
    ]
    assert not short, "single-character glossary words:\n" + "\n".join(short)


# Everyday and general-computing questions that are about no Kubernetes object. Many of them
# contain words the glossary once misread (设计, 服务器, 部署 the verb, cron, 命令行, HTTPS,
# TCP, runtime, "thread pool", 回滚 of a database ...).
#
# Left out on purpose: sentences whose only ambiguity is a name the glossary keeps because
# it is the standard one. Kind names that are English words (Node.js, "a job", "the role",
# "customer service"); kubectl short names that are also units or abbreviations (cm, ns, pv,
# rc, sa, sc, deploy, quota); kubernetes.io/zh-cn Chinese names that are everyday words too
# (节点, 容器, 密钥, 入口, 命名空间, 网络策略, 调度器, 定时任务, 四层/七层 as floors).
ORDINARY = [
    "Kubernetes 是谁设计的？",
    "Kubernetes 是用什么语言写的？",
    "今天会议几点开始？",
    "这个方案有什么优缺点？",
    "设计文档放在哪里？",
    "存储空间不够了怎么办？",
    "打印机设备找不到了怎么办？",
    "这个文件存在吗？",
    "U 盘挂载失败怎么办？",
    "他每天早上都去跑步。",
    "服务器的 CPU 占用太高怎么办？",
    "这个网站怎么部署到云服务器上？",
    "客服电话是多少？",
    "明天要升级操作系统吗？",
    "新款手机什么时候发布？",
    "Linux 上的 cron 表达式怎么写？",
    "Windows 的计划任务在哪里设置？",
    "命令行窗口怎么打开？",
    "公司的组织架构图在哪里？",
    "网站的 HTTPS 证书快过期了。",
    "如何申请一张 SSL 证书？",
    "TLS 1.3 比 1.2 快在哪里？",
    "TCP 和 UDP 有什么区别？",
    "应用层协议有哪些？",
    "传输层负责什么？",
    "Python 报 runtime error 怎么办？",
    "数据库连接池满了怎么办？",
    "数据库事务回滚是什么意思？",
    "电脑总是自动重启是什么原因？",
    "硬盘坏了怎么做故障恢复？",
    "怎么给浏览器设置网络代理？",
    "Redis 是键值存储吗？",
    "Ceph 是一种分布式存储系统。",
    "Redis 集群状态怎么查看？",
    "Hadoop 本地集群怎么搭建？",
    "高考分流是什么意思？",
    "豆荚怎么炒才好吃？",
    "这份合同属于商业机密吗？",
    "这只是一个一次性任务，做完就结束。",
    "国家图书馆的资源集合有多大？",
    "DNS 解析很慢怎么办？",
    "会议调度系统怎么用？",
    "最早一班地铁几点发车？",
    "L4 级自动驾驶什么时候普及？",
    "电脑配置怎么看？",
    "今天天气怎么样？",
    "午饭吃什么？",
    "这本书的作者是谁？",
    "火车票怎么退？",
    "下周三放假吗？",
    "报销流程是什么？",
    "怎么把 Excel 表格导出成 PDF？",
    "Git 分支怎么合并？",
    "为什么我的 Python 脚本运行很慢？",
    "这个函数的返回值是什么类型？",
    "图片上传失败了怎么办？",
    "网页加载很慢是什么原因？",
    "数据库索引应该怎么建？",
    "如何写一份好的周报？",
    "这台笔记本电脑的内存是多少？",
    "How do I reset my password?",
    "What time does the meeting start?",
    "Who designed this logo?",
    "What are the pros and cons of this plan?",
    "How do I change my email address?",
    "Where can I find the design document?",
    "How big should a thread pool be?",
    "How do I enable HTTPS on my blog?",
    "Which SSL certificate should I buy?",
    "What is the difference between TCP and UDP?",
    "How do I rollback a git commit?",
    "The runtime of this algorithm is O(n log n).",
    "This bag of flour weighs 5 lb.",
    "We need an operational readiness review.",
    "The DNS lookup is slow.",
    "How do I set up a network proxy in my browser?",
    "Is Redis a key-value store?",
    "Our office is on the fourth floor.",
    "Where is the nearest train station?",
    "Can you recommend a good book?",
    "How do I install Python on Windows?",
    "What is the capital of France?",
    "Why is my website loading slowly?",
    "How do I merge two branches in git?",
    "What's the weather like tomorrow?",
    "Who maintains this open source project?",
]


def _matched_text(glossary: Glossary, text: str, mention: Mention) -> str:
    """The name or alias that matched at the mention's position, for the failure message."""
    lowered = text.lower()
    term = mention.term
    for word in sorted({term.name, *term.aliases}, key=len, reverse=True):
        if lowered.startswith(word.lower(), mention.start):
            return word
    return lowered[mention.start : mention.start + 8]


def test_ordinary_sentences_name_no_object(glossary: Glossary) -> None:
    assert len(ORDINARY) >= 60
    accidental = [
        f"{text!r}: {m.term.name} (by {_matched_text(glossary, text, m)!r})"
        for text in ORDINARY
        for m in glossary.mentions(text)
        if m.strong and not m.term.word
    ]
    assert not accidental, "ordinary sentences taken for objects:\n" + "\n".join(accidental)


# kind: (kubectl short name, plural, Chinese name, common misspelling); None where there is
# none, or where the usual word is too common to be more than a related word (部署, 服务, 任务,
# 角色: see test_everyday_names_only_hint) or the short name too (no, limits).
KIND_NAMES: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "Pod": ("po", "pods", "容器组", None),
    "Deployment": ("deploy", "deployments", None, "deploymnet"),
    "StatefulSet": ("sts", "statefulsets", "有状态集", "statefullset"),
    "ReplicaSet": ("rs", "replicasets", "副本集", None),
    "ReplicationController": ("rc", "replicationcontrollers", "副本控制器", None),
    "DaemonSet": ("ds", "daemonsets", "守护进程集", "deamonset"),
    "CronJob": ("cj", "cronjobs", "定时任务", None),
    "Job": (None, "jobs", None, None),
    "Service": ("svc", "services", None, "servcie"),
    "ServiceAccount": ("sa", "serviceaccounts", "服务账号", None),
    "Ingress": ("ing", "ingresses", "入口", "ingres"),
    "ConfigMap": ("cm", "configmaps", "配置映射", "configmpa"),
    "Secret": (None, "secrets", "密钥", "secert"),
    "PersistentVolume": ("pv", "persistentvolumes", "持久卷", None),
    "PersistentVolumeClaim": ("pvc", "persistentvolumeclaims", "持久卷申领", None),
    "StorageClass": ("sc", "storageclasses", "存储类", None),
    "Namespace": ("ns", "namespaces", "命名空间", "namesapce"),
    "Role": (None, "roles", None, None),
    "RoleBinding": (None, "rolebindings", "角色绑定", None),
    "ClusterRole": (None, "clusterroles", "集群角色", None),
    "ClusterRoleBinding": (None, "clusterrolebindings", "集群角色绑定", None),
    "NetworkPolicy": ("netpol", "networkpolicies", "网络策略", None),
    "HorizontalPodAutoscaler": ("hpa", "horizontalpodautoscalers", "水平自动扩缩", None),
    "Node": (None, "nodes", "节点", None),
    "ResourceQuota": ("quota", "resourcequotas", "资源配额", None),
    "LimitRange": (None, "limitranges", "资源限制范围", None),
    "CustomResourceDefinition": ("crd", "customresourcedefinitions", "自定义资源定义", None),
    "PodDisruptionBudget": ("pdb", "poddisruptionbudgets", "干扰预算", None),
}

KIND_CASES = [
    pytest.param(kind, name, id=f"{kind}-{form}")
    for kind, names in KIND_NAMES.items()
    for form, name in zip(("short", "plural", "chinese", "misspelt"), names, strict=True)
    if name is not None
]


def test_every_kind_is_in_the_table(glossary: Glossary) -> None:
    assert set(KIND_NAMES) == {t.name for t in glossary.terms if t.is_kind}


@pytest.mark.parametrize(("kind", "name"), KIND_CASES)
def test_kinds_are_recognised_by_the_names_people_use(
    glossary: Glossary, kind: str, name: str
) -> None:
    assert glossary.kinds(f"{name} 是什么？") == [kind]
    assert glossary.kinds(f"kubectl get {name.upper()} -o yaml") == [kind]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("怎么部署一个应用？", "Deployment"),
        ("服务有哪几种类型？", "Service"),
        ("批处理任务怎么写？", "Job"),
        ("角色能做什么？", "Role"),
        ("SSH 密码要放在哪？", "Secret"),
        ("Linux 的 cron 怎么写？", "CronJob"),
    ],
)
def test_everyday_names_only_hint(glossary: Glossary, text: str, kind: str) -> None:
    # Related words: the question may be about the object, but does not say so.
    assert kind not in glossary.subjects(text)
    assert kind in glossary.subjects(text, hints=True)
    assert kind in glossary.expansion(text)


def test_an_alias_names_one_term(glossary: Glossary) -> None:
    owners: dict[str, list[str]] = {}
    for term in glossary.terms:
        for word in (term.name, *term.aliases):
            owners.setdefault(word.lower(), []).append(term.name)
    shared = {word: names for word, names in owners.items() if len(names) > 1}
    assert not shared, f"aliases naming several terms (or repeated): {shared}"


def test_every_name_and_alias_alone_names_its_term(glossary: Glossary) -> None:
    # The longest alias wins across terms (service/glossary.py): 副本集 must not take the
    # characters of 有状态副本集, nor Job's "job" those of "cron job".
    wrong = [
        f"{word!r}: {[m.term.name for m in glossary.mentions(word) if m.strong]}"
        f" instead of {term.name}"
        for term in glossary.terms
        for word in (term.name, *term.aliases)
        if [m.term.name for m in glossary.mentions(word) if m.strong] != [term.name]
    ]
    assert not wrong, "aliases taken by other terms:\n" + "\n".join(wrong)
