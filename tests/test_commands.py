"""Commands go with answers that ask how; a lead-in line brings what it introduces."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.glossary import Glossary
from service.qa import QAEngine

NOTE = """# ReplicaSet

## 删除 ReplicaSet

删除 ReplicaSet 及其关联 Pod 的命令如下：

```bash
kubectl delete rs my-rs
```

只删除 ReplicaSet 而保留 Pod，要加上参数：

```bash
kubectl delete rs my-rs \\
  --cascade=orphan
```

## 扩容 ReplicaSet

ReplicaSet 的副本数可以随时修改，修改后控制器会创建或删除 Pod。

## 暴露 ReplicaSet

给 ReplicaSet 的 Pod 配一个 Service，示例如下：

```yaml
apiVersion: v1
kind: Service
metadata:
  name: my-rs-service
spec:
  selector:
    app: my-rs
  ports:
    - port: 80
```

## 调试程序

下面的程序打印 ReplicaSet 的名字：

```go
fmt.Println(rs.Name)
```
"""


@pytest.fixture
def engine(tmp_path: Path) -> QAEngine:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "replicaset.md").write_text(NOTE, "utf-8")
    settings = Settings(
        corpus=[corpus], index_dir=tmp_path / "index", model="hashing",
        abstain_threshold=-0.5, abstain_threshold_dense=-0.5, abstain_threshold_bm25=-0.5,
    )
    build_index(settings, HashingEmbedder(), Tokenizer())
    return QAEngine(
        load_index(settings.index_dir), HashingEmbedder(), Tokenizer(), Glossary.load(), settings
    )


def test_a_command_request_gets_the_sections_command_with_its_citation(engine: QAEngine) -> None:
    response = engine.ask("怎么删除 ReplicaSet？用什么命令？")
    texts = [c.text for c in response.command_examples]
    assert "kubectl delete rs my-rs" in texts
    command = response.command_examples[texts.index("kubectl delete rs my-rs")]
    citation = response.citations[command.citation - 1]
    assert citation.source == "replicaset.md"
    assert citation.lines[0] <= 8 <= citation.lines[1]  # the command's own line


def test_a_lead_in_line_brings_its_one_line_command_into_the_answer(engine: QAEngine) -> None:
    response = engine.ask("删除 ReplicaSet 及其关联 Pod 的命令是什么？")
    assert "的命令如下：kubectl delete rs my-rs[" in response.answer
    # Never a lead-in alone.
    assert "如下：[" not in response.answer


def test_a_lead_in_whose_block_cannot_be_shown_is_dropped(engine: QAEngine) -> None:
    response = engine.ask("怎么打印 ReplicaSet 的名字？")
    assert "下面的程序打印 ReplicaSet 的名字：" not in response.answer
    assert response.command_examples == [] or all(
        "fmt.Println" not in c.text for c in response.command_examples
    )


def test_a_question_that_asks_no_how_gets_no_commands(engine: QAEngine) -> None:
    response = engine.ask("ReplicaSet 的副本数改了以后会发生什么？", top_k=1)
    assert response.found and response.citations[0].heading[-1] == "扩容 ReplicaSet"
    assert response.command_examples == []
    # The same section, asked how: still none, for it holds no command.
    assert engine.ask("怎么给 ReplicaSet 扩容？", top_k=1).command_examples == []


def test_found_never_comes_with_an_empty_answer(engine: QAEngine) -> None:
    for question in ("kubectl delete rs", "ReplicaSet 命令", "给我 ReplicaSet 的示例"):
        response = engine.ask(question)
        assert response.answer.strip()
        if response.found:
            assert "[" in response.answer  # every answer sentence cites


def test_a_manifest_a_lead_in_introduces_comes_only_when_of_the_kind_asked(
    engine: QAEngine,
) -> None:
    asked = engine.ask("给 ReplicaSet 的 Pod 配一个 Service 的示例", top_k=1)
    assert [y.kind for y in asked.yaml_examples] == ["Service"]
    other = engine.ask("给我一个 Deployment 的 YAML 示例", top_k=1)
    assert all(y.kind == "Deployment" for y in other.yaml_examples)
