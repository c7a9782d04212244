"""The chunker on the team's messy notes, on synthetic edge cases and on the handbook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexer.chunking import DraftChunk, chunk_document
from indexer.markdown import Code, parse_note
from indexer.reading import scan_corpus
from indexer.types import SourceDocument
from tests.conftest import HANDBOOK, NOTES


def doc(text: str, path: str = "note.md") -> SourceDocument:
    return SourceDocument(path=path, root="/", file="/" + path, text=text, encoding="utf-8",
                          sha256="0")


@pytest.fixture(scope="module")
def seed_chunks() -> list[DraftChunk]:
    (document,) = scan_corpus([NOTES]).documents
    return chunk_document(document)


def _source_lines() -> list[str]:
    return NOTES.read_text("utf-8").split("\n")


def _normalise(text: str) -> str:
    return re.sub(r"[\s*`#>|-]|^\d+\.", "", text)


def test_every_chunk_line_is_found_on_its_source_line(seed_chunks: list[DraftChunk]) -> None:
    source = _source_lines()
    for chunk in seed_chunks:
        for line in chunk.lines:
            assert _normalise(line.text) in _normalise(source[line.number - 1]), (
                line.number,
                line.text,
            )


def test_line_ranges_are_exact(seed_chunks: list[DraftChunk]) -> None:
    by_heading = {chunk.heading[-1]: chunk for chunk in seed_chunks}
    assert by_heading["Secret"].line_range == (180, 181)
    assert by_heading["ConfigMap"].line_range == (176, 177)
    assert by_heading["Deployment 示例"].line_range == (250, 268)
    source = _source_lines()
    start, end = by_heading["Secret"].line_range
    assert "敏感信息" in "\n".join(source[start - 1 : end])


def test_heading_paths_follow_the_notes_structure(seed_chunks: list[DraftChunk]) -> None:
    paths = {chunk.heading for chunk in seed_chunks}
    # "####" opens chapters in these notes and "###" their sections.
    assert ("k8s中常用的对象", "Secret") in paths
    assert ("k8s 中， ingress VS ingress Controller", "Ingress Controller") in paths
    assert ("K8s相关文档", "节点（Node）") in paths
    # A chapter-level heading under a section that announces examples is its child.
    assert (
        "k8s 对象和组件的区别",
        "Kubernetes对象的声明性配置",
        "Deployment 示例",
    ) in paths
    assert ("k8s 对象和组件的区别", "总结") in paths


def test_numbered_question_line_acts_as_a_heading(seed_chunks: list[DraftChunk]) -> None:
    first = seed_chunks[0]
    assert first.heading == ("K8s相关文档", "k8s 是什么？有什么作用？")
    assert first.text.startswith("Kubernetes（简称K8s）")
    assert first.line_range == (3, 3)


def test_command_written_in_a_heading_becomes_body_text(seed_chunks: list[DraftChunk]) -> None:
    last = seed_chunks[-1]
    assert last.heading == ("启动minnikube 命令",)
    assert last.text.startswith("minikube start --vm-driver=docker")
    assert last.line_range == (298, 298)


def test_fences_are_never_split(seed_chunks: list[DraftChunk]) -> None:
    for chunk in seed_chunks:
        fences = [line for line in chunk.lines if line.text.lstrip().startswith("```")]
        assert len(fences) % 2 == 0, chunk.heading


def test_hash_inside_a_fence_is_not_a_heading() -> None:
    text = "# 部署\n\n示例：\n\n```bash\n# 这是注释\nkubectl apply -f a.yaml\n```\n\n结束。\n"
    chunks = chunk_document(doc(text))
    assert [c.heading for c in chunks] == [("部署",)]
    assert "# 这是注释" in chunks[0].text


def test_front_matter_title_heads_the_path_and_is_not_text() -> None:
    text = (
        "---\ntitle: 存储笔记\ntags: [k8s]\n---\n\n## PVC\n\n{{< note >}}\n"
        "PVC 是存储请求。\n{{< /note >}}\n<!-- 待补充 -->\n"
    )
    (chunk,) = chunk_document(doc(text))
    assert chunk.heading == ("存储笔记", "PVC")
    assert chunk.text == "PVC 是存储请求。"
    assert chunk.line_range == (9, 9)


def test_long_sections_split_at_sentence_ends_and_code_stays_whole() -> None:
    sentence = "这是一个关于调度器如何为 Pod 选择节点的很长的句子，它会反复出现。"
    body = sentence * 30
    yaml_block = "```yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n```"
    text = f"# 调度\n\n{body}\n\n{yaml_block}\n"
    chunks = chunk_document(doc(text), max_chars=120)
    assert len(chunks) > 3
    for chunk in chunks:
        prose = [line.text for line in chunk.lines if not line.text.startswith(("```", " "))]
        for piece in prose:
            if "kind" not in piece and "apiVersion" not in piece and "metadata" not in piece:
                assert piece.endswith("。"), piece
    assert sum("kind: Pod" in c.text for c in chunks) == 1
    with_code = next(c for c in chunks if "kind: Pod" in c.text)
    assert with_code.text.count("```") == 2


def test_list_items_are_units() -> None:
    items = "\n".join(f"- 第{i}项：说明文字说明文字说明文字。" for i in range(20))
    chunks = chunk_document(doc(f"# 列表\n\n{items}\n"), max_chars=60)
    for chunk in chunks:
        for line in chunk.lines:
            assert line.text.startswith("第") and line.text.endswith("。")


def test_parse_marks_table_rows_as_text() -> None:
    note = parse_note("# 表\n\n| 版本 | API |\n| --- | --- |\n| v1.5+ | core/v1 |\n")
    texts = [getattr(b, "text", "") for b in note.blocks]
    # Each row names its columns; the header row is no line of its own (tests/test_tables.py).
    assert texts[-1] == "版本：v1.5+；API：core/v1"


@pytest.mark.skipif(not HANDBOOK.exists(), reason="handbook corpus not available")
def test_handbook_chunks_keep_fences_whole_and_lines_in_range() -> None:
    scan = scan_corpus([HANDBOOK])
    assert len(scan.documents) > 200
    total = 0
    for document in scan.documents:
        lines = document.text.split("\n")
        chunks = chunk_document(document)
        for code in (b for b in parse_note(document.text).blocks if isinstance(b, Code)):
            holders = {
                i for i, chunk in enumerate(chunks)
                for line in chunk.lines if code.start <= line.number <= code.end
            }
            assert len(holders) == 1, (document.path, code.start)
            assert len(chunks[holders.pop()].codes) >= 1
        for chunk in chunks:
            total += 1
            start, end = chunk.line_range
            assert 1 <= start <= end <= len(lines)
            assert chunk.text.strip()
    assert total > 1000


def test_chunk_ids_are_stable(tmp_path: Path) -> None:
    (document,) = scan_corpus([NOTES]).documents
    assert [c.id for c in chunk_document(document)] == [c.id for c in chunk_document(document)]
