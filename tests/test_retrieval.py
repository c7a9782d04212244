"""Retrieval details: comparison questions favour sections naming every object compared."""

from __future__ import annotations

from dataclasses import replace

import pytest

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import StoredIndex, load_index
from indexer.tokenization import Tokenizer
from service.glossary import Glossary
from service.query import QueryAnalysis, QueryAnalyzer, read_asks
from service.retrieval import FusionConfig, Retriever


def test_latin_names_count_and_chinese_aliases_do_not() -> None:
    glossary = Glossary.load()
    both = ["Service", "Ingress"]
    assert glossary.names_all("Service对象：主要用于集群内部… Ingress对象：…", both)
    assert glossary.names_all("用 svc 暴露，再配 ingress", both)
    # 服务 is how the notes say "service" in general, not only the Service object.
    assert not glossary.names_all("Ingress 把流量路由到集群内的服务", both)


def test_questions_that_compare() -> None:
    assert "difference" in read_asks("ingres 和 servcie 有啥区别")
    assert "difference" in read_asks("What is the difference between Ingress and Service?")
    assert "difference" not in read_asks("Ingress 是什么？")


def test_a_comparison_favours_the_section_naming_both(hashing_settings: Settings) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    retriever = Retriever(index, HashingEmbedder(), Tokenizer(), Glossary.load(),
                          replace_fusion(hashing_settings, 0.2))
    plain = Retriever(index, HashingEmbedder(), Tokenizer(), Glossary.load(),
                      replace_fusion(hashing_settings, 0.0))
    # (The misspelt "ingres 和 servcie 有啥区别" once served here; the glossary's misspelling
    # aliases now rank the summary second even without the bonus.)
    question = "ingress 和 service 的不同"
    both = "Service对象：主要用于集群内部"

    def rank(r: Retriever) -> int:
        hits = r.search(read(index, question), "hybrid", 10).hits
        return next(i for i, h in enumerate(hits, 1) if both in h.chunk.text)

    assert rank(retriever) <= 2 < rank(plain), (rank(retriever), rank(plain))
    # Single-leg modes keep their raw scores.
    assert all(h.fused == h.bm25 for h in retriever.search(read(index, question), "bm25", 10).hits)


def read(index: StoredIndex, question: str) -> QueryAnalysis:
    assert index.english is not None
    analyzer = QueryAnalyzer(Tokenizer(), Glossary.load(), index.bm25.vocab_dict, index.english)
    return analyzer.analyze(question)


def replace_fusion(settings: Settings, bonus: float) -> FusionConfig:
    return replace(FusionConfig.from_settings(settings), comparison_bonus=bonus)


def test_a_bare_manifest_ranks_lower_unless_an_example_is_asked_for(
    hashing_settings: Settings,
) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    plain_fusion = replace(replace_fusion(hashing_settings, 0.2), code_only_factor=1.0)
    plain = Retriever(index, HashingEmbedder(), Tokenizer(), Glossary.load(), plain_fusion)
    retriever = Retriever(index, HashingEmbedder(), Tokenizer(), Glossary.load(),
                          replace_fusion(hashing_settings, 0.2))
    manifests = {row for row in range(len(index.chunks)) if retriever.code_only(row)}
    assert manifests  # the notes' YAML examples are chunks of their own

    def scores(r: Retriever, question: str) -> dict[int, float]:
        return {h.row: h.fused for h in r.search(read(index, question), "hybrid", 49).hits}

    question = "Pod 是什么？"
    before, after = scores(plain, question), scores(retriever, question)
    shown = manifests & before.keys()
    assert shown
    for row in shown:
        assert after[row] == pytest.approx(before[row] * 0.5)
    # Asked for an example, a manifest keeps its full score.
    example = "给我一个 Pod 的 YAML 示例"
    assert scores(retriever, example) == scores(plain, example)


class CountingQueries(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().encode_queries(texts)


def test_a_repeated_question_is_not_embedded_again(hashing_settings: Settings) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    embedder = CountingQueries()
    retriever = Retriever(index, embedder, Tokenizer(), Glossary.load(),
                          FusionConfig.from_settings(hashing_settings))
    first = retriever.search(read(index, "Pod 是什么？"))
    again = retriever.search(read(index, "Pod 是什么？"))
    assert embedder.calls == 1
    assert [h.row for h in first.hits] == [h.row for h in again.hits]
    retriever.search(read(index, "Service 是什么？"))
    assert embedder.calls == 2


def test_approximate_search_still_finds_a_chunk_by_its_sentences(
    hashing_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the exact size, sentences are compared for the chunks the HNSW search brings."""
    monkeypatch.setattr("indexer.store.EXACT_MAX_CHUNKS", 10)
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    assert index.manifest.dense_index == "hnsw"
    retriever = Retriever(index, HashingEmbedder(), Tokenizer(), Glossary.load(),
                          FusionConfig.from_settings(hashing_settings))
    sentence = next(s for s in index.sentences if "敏感信息" in s.text)
    asked = sentence.embedding_text(index.chunks[sentence.chunk])
    hits = retriever.search(read(index, asked), "dense", 3).hits
    assert hits[0].row == sentence.chunk
    # The chunk scores as its closest sentence: the sentence itself.
    assert hits[0].dense == pytest.approx(1.0, abs=1e-3)
