"""The reranking stage: the engine follows the reranker's order; the CrossEncoder path runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.glossary import Glossary
from service.qa import QAEngine
from service.rerank import CrossEncoderReranker
from service.retrieval import Hit


class PreferHeading:
    """Puts chunks under one heading first, whatever the retriever said."""

    def __init__(self, heading: str):
        self.heading = heading
        self.seen: list[int] = []

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        self.seen = [h.row for h in hits]
        scored = [replace(h, fused=1.0 if h.chunk.heading[-1] == self.heading else 0.0)
                  for h in hits]
        return sorted(scored, key=lambda h: -h.fused)


def test_engine_uses_the_rerankers_order(hashing_settings: Settings) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    plain = QAEngine(index, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings)
    question = "Secret 和 ConfigMap 有什么不同？"
    before = plain.ask(question)
    reranker = PreferHeading("Secret")
    reranked = QAEngine(
        index, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings,
        reranker=reranker,
    ).ask(question)
    assert len(reranker.seen) == 10  # the reranker sees a wider pool than top_k
    assert before.citations[0].heading[-1] != "Secret"
    assert reranked.citations[0].heading[-1] == "Secret"
    assert "rerank" in reranked.timings_ms
    assert [c.heading for c in before.citations] != [c.heading for c in reranked.citations]


@pytest.mark.slow
def test_cross_encoder_reranker_runs_on_a_local_model(
    default_model_dir: Path, hashing_settings: Settings
) -> None:
    # No trained cross-encoder ships offline; the e5 encoder with a fresh scoring head still
    # runs the real CrossEncoder code path end to end.
    import torch

    torch.manual_seed(0)
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    engine = QAEngine(index, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings)
    hits = engine.retriever.search(engine.analyze("Secret 是什么？"), limit=5).hits
    reranked = CrossEncoderReranker(str(default_model_dir)).rerank("Secret 是什么？", hits)
    assert sorted(h.row for h in reranked) == sorted(h.row for h in hits)
    scores = [h.fused for h in reranked]
    assert scores == sorted(scores, reverse=True)


def test_evaluation_ranks_with_the_reranker(hashing_settings: Settings) -> None:
    from service.evaluation import EvalCase, run_case

    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    case = EvalCase(
        id="t", question="Secret 和 ConfigMap 有什么不同？", history=(), answerable=True,
        source="k8s-notes.md", phrase="敏感信息", yaml_kind=None, tags=(),
    )
    engines = {
        name: QAEngine(index, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings,
                       reranker=reranker)
        for name, reranker in (("plain", None), ("reranked", PreferHeading("Secret")))
    }
    plain = run_case(engines["plain"], case, "hybrid")
    reranked = run_case(engines["reranked"], case, "hybrid")
    assert plain.rank != 1
    assert reranked.rank == 1
