"""English questions over Chinese notes: the CC-CEDICT translations the retriever uses."""

from __future__ import annotations

import pytest

from indexer.bilingual import EnglishToChinese, is_english
from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.cli import load_engine
from service.glossary import Glossary
from service.qa import QAEngine

VOCABULARY = {"验证", "重建", "一次性", "完成", "处理", "镜像", "化"}


@pytest.fixture(scope="module")
def english() -> EnglishToChinese:
    return EnglishToChinese.for_vocabulary(VOCABULARY)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("validates", "验证"),  # inflected forms are stemmed
        ("rebuilding", "重建"),
        ("one-off", "一次性"),
        ("completion", "完成"),
        ("handles", "处理"),
        ("image", "镜像"),
    ],
)
def test_english_words_map_to_the_corpus_words_that_translate_them(
    english: EnglishToChinese, word: str, expected: str
) -> None:
    assert expected in english.translate(word)


def test_only_words_the_corpus_uses_are_offered(english: EnglishToChinese) -> None:
    # "deploy" translates to 部署, which this vocabulary does not contain.
    assert english.translate("deploy") == ()
    for word in ("validate", "handle"):
        assert set(english.translate(word)) <= VOCABULARY


def test_single_characters_are_not_translations(english: EnglishToChinese) -> None:
    # 化 glosses "-ize" and "change"; a one-character word stands for too much.
    assert "化" not in english.translate("change")


def test_chinese_and_odd_input_translate_to_nothing(english: EnglishToChinese) -> None:
    assert english.translate("验证") == ()
    assert english.translate("kube-apiserver") == ()
    assert english.translate("") == ()


def test_everyday_words_are_told_from_names(english: EnglishToChinese) -> None:
    assert english.is_ordinary("change") and english.is_ordinary("certificates")
    assert not english.is_ordinary("terraform")
    assert not english.is_ordinary("kafka-connect")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Which component validates objects?", True),
        ("how do I store a password in k8s", True),
        ("Pod 的 CPU request 和 limit 一般该设多少？", False),
        ("Ingress 和 Service 有什么区别？", False),
        ("Docker 多阶段构建的 Dockerfile 怎么写？", False),
    ],
)
def test_english_questions_are_recognised(text: str, expected: bool) -> None:
    assert is_english(text) is expected


def test_english_questions_search_the_notes_by_translation(hashing_settings: Settings) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    engine = load_engine(hashing_settings)

    query = engine.analyze("Which component validates objects?")
    assert "验证" in query.tokens and "验证" not in query.own_tokens
    hits = engine.retrieve(query, mode="bm25").hits
    assert "验证" in hits[0].matched_terms
    assert "kube-apiserver" in hits[0].chunk.text

    # In a Chinese question the English words are names, never translated.
    chinese = engine.analyze("Pod 的 CPU request 和 limit 怎么设？")
    assert "请求" not in chinese.tokens  # what "request" would translate to in English


def test_the_index_carries_its_translation_table(hashing_settings: Settings) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    assert index.english is not None
    assert "验证" in index.english.translate("validates")
    assert index.english.is_ordinary("change") and not index.english.is_ordinary("terraform")

    # An index written before the table was stored with it still gets one, computed on load.
    (index.path / "english.json").unlink()
    older = load_index(hashing_settings.index_dir)
    assert older.english is None
    engine = QAEngine(older, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings)
    assert "验证" in engine.analyzer.english.translate("validates")


class RecordingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[list[str]] = []

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        self.queries.append(list(texts))
        return super().encode_queries(texts)


def test_english_questions_are_embedded_with_their_chinese_words(
    hashing_settings: Settings,
) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    index = load_index(hashing_settings.index_dir)
    embedder = RecordingEmbedder()
    engine = QAEngine(index, embedder, Tokenizer(), Glossary.load(), hashing_settings)

    english = engine.retrieve("Which component validates objects?", "hybrid")
    # One batch: the question as asked, then with the translations the keyword leg uses.
    asked, expanded = embedder.queries[-1]
    assert asked == "Which component validates objects?"
    assert expanded.startswith(asked) and "验证" in expanded
    # Abstention judges the question as asked: its own nearest neighbour, not the
    # expanded text's (on notes this small every chunk is in the search's pool).
    own = engine.retriever.embedder.encode_queries([asked])
    sims, _ = index.dense.search(own, 1)
    sentence_best = float((index.sentence_vectors() @ own[0]).max())
    assert english.own_dense == pytest.approx(max(float(sims[0][0]), sentence_best))

    chinese = engine.retrieve("Secret 是什么？", "hybrid")
    assert embedder.queries[-1] == ["Secret 是什么？"]
    assert chinese.own_dense is None
