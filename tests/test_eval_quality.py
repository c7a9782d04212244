"""Answer quality cannot silently drop: the evaluation sets run here with floors.

The handbook index is cached under the notes-qa cache folder between runs; each run
rebuilds it incrementally, so only texts changed since the last run (by new chunking code
or a new handbook) are embedded again. A cold run embeds the whole handbook (minutes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import chunk_table
from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest_schema import ManifestValidator
from indexer.settings import Settings
from indexer.store import load_build, load_index
from indexer.tokenization import Tokenizer
from service.evaluation import EvalReport, evaluate, load_cases
from service.glossary import Glossary
from service.qa import QAEngine
from service.search_backend import EmbeddedBackend
from tests.conftest import EVAL, HANDBOOK, NOTES, cache_root

pytestmark = pytest.mark.slow

# Floors: the quality measured when they were set, less a small margin (the metrics are
# deterministic; the margin absorbs float ties across library versions). The issue's
# targets are higher for some of them; see the README's evaluation section.
NOTES_FLOORS = {
    "answer_hit_rate": 0.89,
    "hit_at_3": 0.94,
    "abstention_precision": 0.90,
    "abstention_recall": 0.90,
    "yaml_kind_accuracy": 0.95,
    "multi_turn_hit_rate": 0.85,
}
# The held-out set was written after the pipeline was tuned and is not tuned on; its
# floors guard generalisation, not the numbers of the set the weights were fitted to.
HOLDOUT_FLOORS = {
    "answer_hit_rate": 0.83,
    "hit_at_3": 0.85,
    "abstention_precision": 0.80,
    "abstention_recall": 0.80,
    "yaml_kind_accuracy": 0.95,
}
HANDBOOK_FLOORS = {
    "answer_hit_rate": 0.80,
    "hit_at_3": 0.87,
    "abstention_precision": 0.95,
    "abstention_recall": 0.80,
    "yaml_kind_accuracy": 0.95,
}

# The sets written blind for issue 11 (tests/eval/README.md): not tuned on, so these floors
# guard generalisation. Measured values less a small margin.
UNSEEN_FLOORS: dict[str, dict[str, float]] = {
    "notes-paraphrase.jsonl": {"answer_hit_rate": 0.62, "hit_at_3": 0.80},
    "notes-followups.jsonl": {
        "answer_hit_rate": 0.82, "hit_at_3": 0.92, "yaml_kind_accuracy": 0.85,
    },
    "handbook-unseen.jsonl": {
        "answer_hit_rate": 0.69, "hit_at_3": 0.85, "command_hit_rate": 0.75,
        "abstention_precision": 0.95,
    },
    "handbook-followups.jsonl": {"answer_hit_rate": 0.37, "hit_at_3": 0.34},
}


def _engine(corpus: Path, index_dir: Path, embedder: SentenceTransformerEmbedder) -> QAEngine:
    settings = Settings(corpus=[corpus], index_dir=index_dir, model="default")
    build_index(settings, embedder, Tokenizer(), ManifestValidator())
    return QAEngine(load_index(index_dir), embedder, Tokenizer(), Glossary.load(), settings)


@pytest.fixture(scope="module")
def notes_engine(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> QAEngine:
    return _engine(NOTES.parent, tmp_path_factory.mktemp("notes-index"), real_embedder)


@pytest.fixture(scope="module")
def notes_reports(notes_engine: QAEngine) -> dict[str, EvalReport]:
    cases = load_cases(EVAL / "notes.jsonl")
    return {mode: evaluate(notes_engine, cases, mode) for mode in ("hybrid", "bm25", "dense")}


@pytest.fixture(scope="module")
def handbook_engine(real_embedder: SentenceTransformerEmbedder) -> QAEngine:
    if not HANDBOOK.exists():
        pytest.skip("handbook corpus not available")
    index_dir = cache_root() / "eval-index" / "kubernetes-handbook"
    return _engine(HANDBOOK, index_dir, real_embedder)


@pytest.fixture(scope="module")
def handbook_reports(handbook_engine: QAEngine) -> dict[str, EvalReport]:
    cases = load_cases(EVAL / "handbook.jsonl")
    return {mode: evaluate(handbook_engine, cases, mode) for mode in ("hybrid", "bm25", "dense")}


def _check(report: EvalReport, floors: dict[str, float]) -> None:
    below = {
        key: (getattr(report, key), floor)
        for key, floor in floors.items()
        if getattr(report, key) < floor
    }
    misses = "\n".join(
        f"  {f['id']} {f['question']} (expected {f['expected']})" for f in report.failures
    )
    assert not below, f"below floor {below}; misses:\n{misses}"


def test_eval_sets_are_well_formed() -> None:
    notes = load_cases(EVAL / "notes.jsonl")
    holdout = load_cases(EVAL / "notes-holdout.jsonl")
    handbook = load_cases(EVAL / "handbook.jsonl")
    assert len(notes) >= 80 and len(handbook) >= 50
    for cases in (notes, handbook):
        assert sum(not c.answerable for c in cases) >= 12
        assert len({c.id for c in cases}) == len(cases)
    assert sum(not c.answerable for c in notes + handbook) >= 15
    assert sum(bool(c.history) for c in notes + handbook) >= 15
    text = NOTES.read_text("utf-8")
    assert not {c.question for c in notes} & {c.question for c in holdout}
    for case in notes + holdout:
        if case.answerable:
            assert case.phrase and case.phrase in text, case.id


def test_labelled_spans_and_commands_are_in_their_sources() -> None:
    for name in UNSEEN_FLOORS:
        corpus = NOTES.parent if name.startswith("notes") else HANDBOOK
        for case in load_cases(EVAL / name):
            if not case.answerable:
                continue
            path = corpus / (case.source or "")
            if not path.exists():
                pytest.skip(f"{path} not available")
            lines = path.read_text("utf-8").split("\n")
            assert case.phrase and case.phrase in "\n".join(lines), case.id
            if case.command:
                assert case.command in "\n".join(lines), case.id
            if case.span:
                first, last = case.span
                assert case.phrase in "\n".join(lines[first - 1 : last]), case.id


@pytest.mark.parametrize("name", [n for n in UNSEEN_FLOORS if n.startswith("notes")])
def test_unseen_notes_sets_quality_floors(notes_engine: QAEngine, name: str) -> None:
    _check(evaluate(notes_engine, load_cases(EVAL / name), "hybrid"), UNSEEN_FLOORS[name])


@pytest.mark.parametrize("name", [n for n in UNSEEN_FLOORS if not n.startswith("notes")])
def test_unseen_handbook_sets_quality_floors(handbook_engine: QAEngine, name: str) -> None:
    _check(evaluate(handbook_engine, load_cases(EVAL / name), "hybrid"), UNSEEN_FLOORS[name])


def test_notes_quality_floors(notes_reports: dict[str, EvalReport]) -> None:
    _check(notes_reports["hybrid"], NOTES_FLOORS)


def test_notes_holdout_quality_floors(notes_engine: QAEngine) -> None:
    _check(evaluate(notes_engine, load_cases(EVAL / "notes-holdout.jsonl"), "hybrid"),
           HOLDOUT_FLOORS)


def test_handbook_quality_floors(handbook_reports: dict[str, EvalReport]) -> None:
    _check(handbook_reports["hybrid"], HANDBOOK_FLOORS)


@pytest.mark.parametrize("corpus", ["notes", "handbook"])
def test_hybrid_is_at_least_as_good_as_either_leg(
    corpus: str, request: pytest.FixtureRequest
) -> None:
    reports: dict[str, EvalReport] = request.getfixturevalue(f"{corpus}_reports")
    hybrid = reports["hybrid"]
    for leg in ("bm25", "dense"):
        assert hybrid.hit_at_3 >= reports[leg].hit_at_3, (leg, reports[leg].hit_at_3)
        assert hybrid.answer_hit_rate >= reports[leg].answer_hit_rate, (
            leg,
            reports[leg].answer_hit_rate,
        )


def test_handbook_read_chunk_by_chunk_scores_as_when_parsed_whole(
    handbook_engine: QAEngine,
    handbook_reports: dict[str, EvalReport],
    real_embedder: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above EAGER_MAX_CHUNKS chunks are read from disk on demand: same answers."""
    monkeypatch.setattr(chunk_table, "EAGER_MAX_CHUNKS", 0)
    assert isinstance(handbook_engine.backend, EmbeddedBackend)
    index = load_build(handbook_engine.backend.index.path)
    assert not index.chunks.eager
    settings = Settings(corpus=[HANDBOOK], index_dir=index.path.parent.parent, model="default")
    lazy = QAEngine(index, real_embedder, Tokenizer(), Glossary.load(), settings)
    report = evaluate(lazy, load_cases(EVAL / "handbook.jsonl"), "hybrid")
    whole = handbook_reports["hybrid"]
    assert (report.answer_hit_rate, report.hit_at_3, report.failures) == (
        whole.answer_hit_rate, whole.hit_at_3, whole.failures,
    )


def _on_milvus(engine: QAEngine, folder: Path) -> QAEngine:
    """The engine's index published to milvus-lite, and an engine answering from there."""
    from indexer.milvus_store import connect
    from indexer.milvus_sync import publish_to_milvus
    from service.abstention import object_names
    from service.milvus_backend import MilvusSource

    assert isinstance(engine.backend, EmbeddedBackend)
    settings = engine.settings.model_copy(update={"milvus_uri": str(folder / "milvus.db")})
    publish_to_milvus(engine.backend.index, settings, connect(settings),
                      names=object_names(Glossary.load()))
    return QAEngine(MilvusSource(settings).backend(), engine.retriever.embedder, Tokenizer(),
                    Glossary.load(), settings)


@pytest.mark.parametrize("corpus", ["notes", "handbook"])
def test_milvus_answers_within_two_points_of_the_embedded_index(
    corpus: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine: QAEngine = request.getfixturevalue(f"{corpus}_engine")
    embedded: EvalReport = request.getfixturevalue(f"{corpus}_reports")["hybrid"]
    milvus = evaluate(_on_milvus(engine, tmp_path), load_cases(EVAL / f"{corpus}.jsonl"),
                      "hybrid")
    for key in ("hit_at_3", "answer_hit_rate", "abstention_precision", "abstention_recall"):
        assert abs(getattr(milvus, key) - getattr(embedded, key)) <= 0.02, (
            key, getattr(milvus, key), getattr(embedded, key), milvus.failures[:5]
        )
