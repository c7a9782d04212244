import pytest

from indexer.tokenization import Tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.mark.parametrize(
    "identifier",
    [
        "kube-proxy",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "clusterip",
        "nodeport",
        "persistentvolumeclaim",
        "configmap",
        "minikube",
        "kubectl",
    ],
)
def test_kubernetes_identifiers_stay_one_token(tokenizer: Tokenizer, identifier: str) -> None:
    text = f"关于{identifier.upper() if len(identifier) < 12 else identifier}的说明"
    assert identifier in tokenizer.tokenize(text)


def test_mixed_case_is_lowercased_and_stopwords_removed(tokenizer: Tokenizer) -> None:
    tokens = tokenizer.tokenize("Ingress 和 Service 有什么区别？What is the difference")
    assert tokens == ["ingress", "service", "区别", "difference"]


def test_user_dictionary_keeps_chinese_terms(tokenizer: Tokenizer) -> None:
    assert "控制器管理器" in tokenizer.tokenize("控制器管理器负责运行控制循环")
    assert "资源池" in tokenizer.tokenize("资源池是供Pod调度和运行时使用的资源总和")


def test_compound_identifiers_also_yield_their_parts(tokenizer: Tokenizer) -> None:
    tokens = tokenizer.tokenize("apiVersion: networking.k8s.io/v1")
    assert "networking.k8s.io/v1" in tokens
    assert "networking" in tokens


def test_separate_instances_share_no_state() -> None:
    a = Tokenizer(extra_words=["蓝绿发布"])
    b = Tokenizer()
    assert "蓝绿发布" in a.tokenize("蓝绿发布怎么做")
    assert "蓝绿发布" not in b.tokenize("蓝绿发布怎么做")
