"""Markdown tables become facts: one line per row, "列名：值；列名：值", each citing its own
source line and kept whole as one sentence. The small tables are copied from the handbook."""

from __future__ import annotations

import pytest

from indexer.chunking import DraftChunk, chunk_document
from indexer.markdown import Table, parse_note
from indexer.reading import scan_corpus
from indexer.sentences import split_sentences
from indexer.types import Chunk, SourceDocument
from tests.conftest import HANDBOOK


def doc(text: str) -> SourceDocument:
    return SourceDocument("note.md", "/", "/note.md", text, "utf-8", "0")


def as_chunk(draft: DraftChunk) -> Chunk:
    """The chunk indexer.build makes of a draft."""
    return Chunk(draft.id, draft.source, draft.heading, draft.line_range, draft.text,
                 tuple(line.number for line in draft.lines), table_rows=draft.table_rows)


def rows(draft: DraftChunk) -> list[tuple[int, str]]:
    return [(draft.lines[i].number, draft.lines[i].text) for i in draft.table_rows]


# concepts/components/kubectl.md, lines 47-55 there (the introducing sentence shortened).
KUBECTL_RUN = """\
注意，`kubectl run` 具体的资源类型是由参数决定的，默认为 Deployment：

| 创建的资源类型 | 参数 |
| :--- | :--- |
| Pod | `--restart=Never` |
| Replication Controller | `--generator=run/v1` |
| Deployment | `--restart=Always` |
| Job | `--restart=OnFailure` |
| CronJob | `--schedule=<cron>` |
"""

# extension/cri/README.md: bold everywhere, Chinese parentheses and lists inside cells.
CRI = """\
## 容器运行时

| **CRI** **容器运行时** | **维护者** | **主要特性** | **容器引擎** |
| :--- | :--- | :--- | :--- |
| **Dockershim** | Kubernetes | 内置实现、特性最新 | docker |
| **cri-o** | Kubernetes | OCI标准不需要Docker | OCI（runc、kata、gVisor…） |
| **Frakti** | Kubernetes | 虚拟化容器 | hyperd、docker |
"""

# concepts/objects/persistent-volume.md (links shortened): links in cells, "-" for "none".
STORAGE_CLASSES = """\
# StorageClass

在使用 PVC 时，可以通过 `DefaultStorageClass` 准入控制设置默认 StorageClass。

各插件如下：

| Volume Plugin | Internal Provisioner | Config Example |
| :--- | :--- | :--- |
| AWSElasticBlockStore | ✓ | [AWS](https://k8s.io/sc/#aws) |
| AzureFile | ✓ | [Azure File](https://k8s.io/sc/#azure-file) |
| AzureDisk | ✓ | [Azure Disk](https://k8s.io/sc/#azure-disk) |
| CephFS | - | - |
| Cinder | ✓ | [OpenStack Cinder](https://k8s.io/sc/#openstack-cinder) |
| GCEPersistentDisk | ✓ | [GCE](https://k8s.io/sc/#gce) |
"""


def test_each_row_names_its_columns_and_cites_its_own_line() -> None:
    (draft,) = chunk_document(doc(KUBECTL_RUN))
    assert rows(draft) == [
        (5, "创建的资源类型：Pod；参数：--restart=Never"),
        (6, "创建的资源类型：Replication Controller；参数：--generator=run/v1"),
        (7, "创建的资源类型：Deployment；参数：--restart=Always"),
        (8, "创建的资源类型：Job；参数：--restart=OnFailure"),
        # Inline code is kept verbatim: "<cron>" is no HTML tag to strip.
        (9, "创建的资源类型：CronJob；参数：--schedule=<cron>"),
    ]
    # The introducing line stays with the rows; the header (3) and alignment (4) rows are
    # no lines of their own.
    assert [line.number for line in draft.lines] == [1, 5, 6, 7, 8, 9]
    assert draft.table_rows == (1, 2, 3, 4, 5)


def test_bold_and_links_are_cleaned_from_cells() -> None:
    (draft,) = chunk_document(doc(CRI))
    assert draft.heading == ("容器运行时",)
    assert rows(draft) == [
        (5, "CRI 容器运行时：Dockershim；维护者：Kubernetes；主要特性：内置实现、特性最新；"
            "容器引擎：docker"),
        (6, "CRI 容器运行时：cri-o；维护者：Kubernetes；主要特性：OCI标准不需要Docker；"
            "容器引擎：OCI（runc、kata、gVisor…）"),
        (7, "CRI 容器运行时：Frakti；维护者：Kubernetes；主要特性：虚拟化容器；"
            "容器引擎：hyperd、docker"),
    ]
    (_, aws), *_ = rows(chunk_document(doc(STORAGE_CLASSES))[0])
    assert aws == (
        "Volume Plugin：AWSElasticBlockStore；Internal Provisioner：✓；Config Example：AWS"
    )


def test_a_row_is_one_sentence_and_the_header_is_none() -> None:
    note = """\
# 网络方案

| 方案 | 适用场景 | 优势 | 劣势 |
| --- | --- | --- | --- |
| Flannel | 小集群 | 简单 | 性能一般 |
| Calico | 大集群；需要网络策略 | 性能好。支持 BGP | 配置：较复杂： |
"""
    (draft,) = chunk_document(doc(note))
    sentences = [(s.line, s.text) for s in split_sentences(as_chunk(draft), 0)]
    # Prose rules would cut the Calico row at "；" and "。" and drop "劣势：配置：较复杂："
    # as a label; a row is one fact.
    assert sentences == [
        (5, "方案：Flannel；适用场景：小集群；优势：简单；劣势：性能一般"),
        (6, "方案：Calico；适用场景：大集群；需要网络策略；优势：性能好。支持 BGP；"
            "劣势：配置：较复杂："),
    ]


def test_a_long_row_stays_one_whole_sentence() -> None:
    cell = "这一格写得很长，" * 60 + "最后一句。"
    (draft,) = chunk_document(doc(f"| 项 | 说明 |\n| --- | --- |\n| 长 | {cell} |\n"), max_chars=80)
    (sentence,) = split_sentences(as_chunk(draft), 0)
    assert sentence.line == 3
    assert sentence.text == "项：长；说明：" + cell.rstrip("。")


def test_a_table_longer_than_a_chunk_is_split_between_whole_rows() -> None:
    drafts = chunk_document(doc(STORAGE_CLASSES), max_chars=120)
    # "各插件如下：" (5) announces the table: it goes with the first row, not before a cut.
    assert [[line.number for line in d.lines] for d in drafts] == [
        [3], [5, 9], [10], [11], [12], [13], [14],
    ]
    assert [d.table_rows for d in drafts] == [(), (1,), (0,), (0,), (0,), (0,), (0,)]
    for draft in drafts:
        assert draft.heading == ("StorageClass",)
        for _, text in rows(draft):
            assert text.startswith("Volume Plugin：") and "Internal Provisioner：" in text, text
    assert rows(drafts[4]) == [
        (12, "Volume Plugin：CephFS；Internal Provisioner：-；Config Example：-")
    ]


def test_escaped_pipes_stay_text_and_empty_cells_are_skipped() -> None:
    note = """\
| 参数 | 取值 | 说明 |
|:-----|:----:|-----:|
| `--output` | `json\\|yaml\\|wide` | 输出格式 |
| `--dry-run` |  | 只打印不执行 |
"""
    (table,) = parse_note(note).blocks
    assert isinstance(table, Table)
    assert [(line.number, line.text) for line in table.lines] == [
        (3, "参数：--output；取值：json|yaml|wide；说明：输出格式"),
        (4, "参数：--dry-run；说明：只打印不执行"),
    ]


def test_ragged_rows_keep_every_cell() -> None:
    note = """\
| 字段 | 类型 | 说明 |
| --- | --- | --- |
| replicas | int |
| selector | LabelSelector | 选择 Pod | 必填 |
"""
    (table,) = parse_note(note).blocks
    assert isinstance(table, Table)
    assert [line.text for line in table.lines] == [
        "字段：replicas；类型：int",
        # A cell past the header has no column name, but is still the author's words.
        "字段：selector；类型：LabelSelector；说明：选择 Pod；必填",
    ]


def test_a_table_without_header_names_joins_its_cells() -> None:
    note = """\
|  |  |
| --- | --- |
| kubectl get pods | 列出 Pod |
| kubectl logs | 查看日志 |
"""
    (table,) = parse_note(note).blocks
    assert isinstance(table, Table)
    assert [line.text for line in table.lines] == [
        "kubectl get pods；列出 Pod", "kubectl logs；查看日志"
    ]
    partial = "|  | 优势 |\n| --- | --- |\n| Flannel | 简单 |\n"
    (table,) = parse_note(partial).blocks
    assert isinstance(table, Table)
    assert [line.text for line in table.lines] == ["Flannel；优势：简单"]


def test_a_header_without_rows_says_nothing() -> None:
    header_only = "# 空表\n\n| 方案 | 适用场景 | 优势 | 劣势 |\n| --- | --- | --- | --- |\n"
    assert chunk_document(doc(header_only)) == []


def test_a_table_inside_a_list_item() -> None:
    note = """\
# 部署

1. 选择网络插件，各方案对比如下：

   | 方案 | 适用场景 |
   | --- | --- |
   | Flannel | 小集群 |
   | Calico | 大集群 |

2. 安装插件。
"""
    (draft,) = chunk_document(doc(note))
    assert [(line.number, line.text) for line in draft.lines] == [
        (3, "选择网络插件，各方案对比如下："),
        (7, "方案：Flannel；适用场景：小集群"),
        (8, "方案：Calico；适用场景：大集群"),
        (10, "安装插件。"),
    ]
    assert draft.table_rows == (1, 2)
    block = next(b for b in parse_note(note).blocks if isinstance(b, Table))
    assert block.in_list


def test_rows_drawn_as_rules_are_not_facts() -> None:
    note = "> | 组件 | 说明 |\n> |---|---|\n> | kubelet | 节点代理 |\n> |------|------|\n"
    (table,) = parse_note(note).blocks
    assert isinstance(table, Table)
    assert [(line.number, line.text) for line in table.lines] == [
        (3, "组件：kubelet；说明：节点代理")
    ]


@pytest.mark.skipif(not HANDBOOK.exists(), reason="handbook corpus not available")
def test_handbook_rows_cite_their_own_table_lines() -> None:
    count = 0
    for document in scan_corpus([HANDBOOK]).documents:
        source = document.text.split("\n")
        headers = {
            block.header_line for block in parse_note(document.text).blocks
            if isinstance(block, Table)
        }
        for draft in chunk_document(document):
            chunk = as_chunk(draft)
            whole = {(s.line, s.text) for s in split_sentences(chunk, 0)}
            for number, text in rows(draft):
                count += 1
                assert "|" in source[number - 1] and number not in headers, (document.path, number)
                assert (number, text) in whole, (document.path, number)
    assert count > 300


def test_a_cell_that_reads_as_a_fence_hides_no_rows() -> None:
    note = "|  |  |\n| --- | --- |\n| `` ```yaml `` | 开头 |\n| kind | Pod |\n"
    (draft,) = chunk_document(doc(note))
    assert [(s.line, s.text) for s in split_sentences(as_chunk(draft), 0)] == [
        (3, "yaml；开头"), (4, "kind；Pod"),
    ]
