"""Index builds: summary numbers, incremental re-embedding, atomic publishing."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildError, build_index
from indexer.chunking import chunk_document
from indexer.embedding import HashingEmbedder
from indexer.manifest_schema import ManifestValidator
from indexer.settings import Settings
from indexer.store import current_build, load_index
from indexer.tokenization import Tokenizer


class CountingEmbedder(HashingEmbedder):
    """Records every passage it is asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[str] = []
        self.calls = 0

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        return super().encode_passages(texts, progress)


class ExplodingEmbedder(HashingEmbedder):
    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        raise KeyboardInterrupt("interrupted mid-build")


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


def test_first_build_embeds_every_chunk(
    hashing_settings: Settings, tokenizer: Tokenizer
) -> None:
    embedder = CountingEmbedder()
    report = build_index(hashing_settings, embedder, tokenizer, ManifestValidator())
    assert report.files == 1
    assert report.chunks == report.embedded == 49
    assert report.sentences == report.sentences_embedded > report.chunks
    # One encode call for chunks and sentences together, each distinct text once.
    assert embedder.calls == 1
    assert len(embedder.encoded) == len(set(embedder.encoded))
    assert len(embedder.encoded) <= report.chunks + report.sentences
    assert report.yaml_examples == 6
    assert report.reused == 0
    index = load_index(hashing_settings.index_dir)
    assert index.dense.ntotal == len(index.chunks) == report.chunks
    assert {e.kind for e in index.yaml} == {"Service", "Ingress", "Pod", "Deployment"}
    assert all(e.k8s_valid for e in index.yaml)


def test_rebuild_only_embeds_changed_chunks_and_drops_deleted_files(
    hashing_settings: Settings, notes_corpus: Path, tokenizer: Tokenizer
) -> None:
    build_index(hashing_settings, CountingEmbedder(), tokenizer)
    unchanged = CountingEmbedder()
    report = build_index(hashing_settings, unchanged, tokenizer)
    assert unchanged.calls == 0 and report.embedded == 0 and report.reused == report.chunks

    note = notes_corpus / "k8s-notes.md"
    note.write_text(
        note.read_text("utf-8").replace(
            "Secret是用来存储和管理敏感信息的对象", "Secret是用来存放敏感信息的对象"
        ),
        encoding="utf-8",
    )
    (notes_corpus / "extra.md").write_text("# HPA\n\nHPA 根据 CPU 使用率自动扩缩容。\n", "utf-8")
    edited = CountingEmbedder()
    report = build_index(hashing_settings, edited, tokenizer)
    assert edited.calls == 1
    # The edited Secret chunk and its edited sentence, the new note's chunk and sentence.
    assert len(edited.encoded) == 4
    assert sum("存放敏感信息" in text for text in edited.encoded) == 2
    assert sum("根据 CPU 使用率" in text for text in edited.encoded) == 2
    assert report.embedded == 2 and report.sentences_embedded == 2
    assert report.reused == report.chunks - 2

    (notes_corpus / "extra.md").unlink()
    report = build_index(hashing_settings, CountingEmbedder(), tokenizer)
    assert report.removed_files == ["extra.md"]
    index = load_index(hashing_settings.index_dir)
    assert all(chunk.source == "k8s-notes.md" for chunk in index.chunks)
    # Reused vectors are the ones the embedder would compute.
    fresh = HashingEmbedder().encode_passages([c.embedding_text() for c in index.chunks])
    assert np.allclose(index.vectors(), fresh, atol=1e-6)
    fresh_sentences = HashingEmbedder().encode_passages(
        [s.embedding_text(index.chunks[s.chunk]) for s in index.sentences]
    )
    assert np.allclose(index.sentence_vectors(), fresh_sentences, atol=1e-6)


def test_a_failed_build_keeps_the_previous_index(
    hashing_settings: Settings, notes_corpus: Path, tokenizer: Tokenizer
) -> None:
    build_index(hashing_settings, CountingEmbedder(), tokenizer)
    before = current_build(hashing_settings.index_dir)
    chunks_before = len(load_index(hashing_settings.index_dir).chunks)
    (notes_corpus / "new.md").write_text("# 新笔记\n\n新的内容。\n", "utf-8")
    with pytest.raises(KeyboardInterrupt):
        build_index(hashing_settings, ExplodingEmbedder(), tokenizer)
    assert current_build(hashing_settings.index_dir) == before
    assert len(load_index(hashing_settings.index_dir).chunks) == chunks_before
    leftovers = [p.name for p in (hashing_settings.index_dir / "builds").iterdir()]
    assert not [name for name in leftovers if name.startswith(".tmp-")]


def test_a_build_that_fails_while_writing_keeps_the_previous_index(
    hashing_settings: Settings, tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(hashing_settings, CountingEmbedder(), tokenizer)
    before = current_build(hashing_settings.index_dir)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("indexer.store.faiss.write_index", disk_full)
    with pytest.raises(OSError):
        build_index(hashing_settings, CountingEmbedder(), tokenizer)
    assert current_build(hashing_settings.index_dir) == before
    load_index(hashing_settings.index_dir)  # still loads


def test_empty_or_missing_corpus_is_a_clear_error(
    hashing_settings: Settings, tmp_path: Path, tokenizer: Tokenizer
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BuildError, match="没有可索引的笔记"):
        build_index(hashing_settings, CountingEmbedder(), tokenizer, corpus=[empty])
    with pytest.raises(BuildError, match="不存在"):
        build_index(hashing_settings, CountingEmbedder(), tokenizer, corpus=[tmp_path / "nope"])
    assert current_build(hashing_settings.index_dir) is None


def test_gbk_notes_are_indexed(
    hashing_settings: Settings, notes_corpus: Path, tokenizer: Tokenizer
) -> None:
    (notes_corpus / "gbk.md").write_bytes("# 存储\n\nPV 是管理员提供的存储资源。\n".encode("gbk"))
    (notes_corpus / "broken.md").write_bytes(b"\x00\x01binary")
    report = build_index(hashing_settings, CountingEmbedder(), tokenizer)
    assert report.files == 2
    assert [s.path for s in report.skipped] == ["broken.md"]
    index = load_index(hashing_settings.index_dir)
    assert index.manifest.files["gbk.md"].encoding == "gb18030"
    assert any("管理员提供的存储资源" in c.text for c in index.chunks)


def test_old_builds_are_pruned(hashing_settings: Settings, notes_corpus: Path,
                               tokenizer: Tokenizer) -> None:
    for i in range(4):
        (notes_corpus / "n.md").write_text(f"# 笔记\n\n第 {i} 版。\n", "utf-8")
        build_index(hashing_settings, CountingEmbedder(), tokenizer)
    builds = [p for p in (hashing_settings.index_dir / "builds").iterdir()]
    assert len(builds) <= 2
    shutil.rmtree(hashing_settings.index_dir)


def test_a_rebuild_with_nothing_to_embed_never_loads_the_model(
    hashing_settings: Settings, notes_corpus: Path, tokenizer: Tokenizer
) -> None:
    build_index(hashing_settings, HashingEmbedder(), tokenizer)
    loads: list[int] = []

    def load() -> HashingEmbedder:
        loads.append(1)
        return HashingEmbedder()

    build_index(hashing_settings, load, tokenizer)
    assert loads == []
    (notes_corpus / "extra.md").write_text("# HPA\n\nHPA 根据 CPU 使用率自动扩缩容。\n", "utf-8")
    report = build_index(hashing_settings, load, tokenizer)
    assert loads == [1] and report.embedded == 1


def test_vectors_of_an_older_format_are_reused(
    hashing_settings: Settings, tokenizer: Tokenizer
) -> None:
    """A format change rebuilds the index without re-embedding it (hours on big notes)."""
    build_index(hashing_settings, HashingEmbedder(), tokenizer)
    build = current_build(hashing_settings.index_dir)
    assert build is not None
    # Format 4 kept sentence vectors in a FAISS index.
    import json

    import faiss

    old = faiss.IndexFlatIP(256)
    old.add(np.load(build / "sentences.npy"))
    faiss.write_index(old, str(build / "sentences.faiss"))
    (build / "sentences.npy").unlink()
    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    manifest["format_version"] = 4
    (build / "manifest.json").write_text(json.dumps(manifest), "utf-8")

    counting = CountingEmbedder()
    report = build_index(hashing_settings, counting, tokenizer)
    assert counting.calls == 0 and report.reused == report.chunks
    assert load_index(hashing_settings.index_dir).manifest.format_version > 4


def test_each_chunk_keeps_its_keyword_tokens_and_the_glossary_names_it_mentions(
    hashing_settings: Settings, tokenizer: Tokenizer
) -> None:
    build_index(hashing_settings, HashingEmbedder(), tokenizer, names=["Ingress", "Kafka"])
    index = load_index(hashing_settings.index_dir)
    for row, chunk in enumerate(index.chunks):
        words = set(tokenizer.tokenize(" ".join(chunk.heading) + "\n" + chunk.text))
        assert index.terms[row] == words & set(index.bm25.vocab_dict)
    assert index.terms.document_frequency("ingress") == sum(
        "ingress" in index.terms[row] for row in range(len(index.chunks))
    )
    assert index.names == {"ingress": True, "kafka": False}


def test_notes_past_the_exact_size_are_searched_with_hnsw(
    hashing_settings: Settings, tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("indexer.store.EXACT_MAX_CHUNKS", 10)
    build_index(hashing_settings, HashingEmbedder(), tokenizer)
    index = load_index(hashing_settings.index_dir)
    assert index.manifest.dense_index == "hnsw" and len(index.chunks) > 10
    assert type(index.dense).__name__ == "IndexHNSWFlat"
    # On 49 chunks the graph search finds what the exact search finds.
    vectors = index.vectors()
    _, found = index.dense.search(vectors[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_an_unchanged_note_is_taken_from_the_previous_build_as_it_was(
    hashing_settings: Settings, notes_corpus: Path, tokenizer: Tokenizer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (notes_corpus / "extra.md").write_text(
        "# HPA\n\nHPA 根据 CPU 使用率自动扩缩容。\n\n```yaml\napiVersion: v1\nkind: Pod\n"
        "metadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n```\n",
        "utf-8",
    )
    build_index(hashing_settings, HashingEmbedder(), tokenizer, ManifestValidator())
    first = load_index(hashing_settings.index_dir)
    parsed: list[str] = []
    real = chunk_document

    def spy(doc, chunk_chars):  # type: ignore[no-untyped-def]
        parsed.append(doc.path)
        return real(doc, chunk_chars)

    monkeypatch.setattr("indexer.build.chunk_document", spy)
    note = notes_corpus / "k8s-notes.md"
    note.write_text(note.read_text("utf-8") + "\n## 新节\n\n新增的一段说明文字。\n", "utf-8")
    build_index(hashing_settings, HashingEmbedder(), tokenizer, ManifestValidator())
    assert parsed == ["k8s-notes.md"]  # extra.md was not parsed again
    second = load_index(hashing_settings.index_dir)
    # The reused note's chunks, examples and keyword tokens are the ones a fresh parse makes.
    monkeypatch.setattr("indexer.build.chunk_document", real)
    fresh_settings = hashing_settings.model_copy(
        update={"index_dir": hashing_settings.index_dir.parent / "fresh"}
    )
    build_index(fresh_settings, HashingEmbedder(), tokenizer, ManifestValidator())
    fresh = load_index(fresh_settings.index_dir)
    assert list(second.chunks) == list(fresh.chunks) and second.yaml == fresh.yaml
    assert second.commands == fresh.commands
    assert list(second.sentences) == list(fresh.sentences)
    assert [sorted(second.terms.tokens(r)) for r in range(len(second.chunks))] == [
        sorted(fresh.terms.tokens(r)) for r in range(len(fresh.chunks))
    ]
    assert second.bm25.vocab_dict == fresh.bm25.vocab_dict
    assert len(first.chunks) < len(second.chunks)


def test_a_changed_setting_parses_every_note_again(
    hashing_settings: Settings, tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(hashing_settings, HashingEmbedder(), tokenizer)
    parsed: list[str] = []
    real = chunk_document
    monkeypatch.setattr(
        "indexer.build.chunk_document",
        lambda doc, chars: parsed.append(doc.path) or real(doc, chars),
    )
    build_index(hashing_settings.model_copy(update={"chunk_chars": 200}), HashingEmbedder(),
                tokenizer)
    assert parsed == ["k8s-notes.md"]


def test_sentences_are_read_back_as_they_were_split(
    hashing_settings: Settings, tokenizer: Tokenizer
) -> None:
    from indexer.sentences import split_sentences

    build_index(hashing_settings, HashingEmbedder(), tokenizer)
    index = load_index(hashing_settings.index_dir)
    split = [s for row, c in enumerate(index.chunks) for s in split_sentences(c, row)]
    assert list(index.sentences) == split and len(index.sentences) == len(split)
    assert index.sentences[-1] == split[-1] and index.sentences[1:3] == split[1:3]
    for row in range(len(index.chunks)):
        assert [index.sentences[i] for i in index.sentences.of_chunk(row)] == [
            s for s in split if s.chunk == row
        ]
