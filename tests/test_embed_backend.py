"""Embedding backends: the setting, what an index records, the service refusing a mismatch,
and (slow) the real default model on ONNX Runtime int8 against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from indexer.build import build_index
from indexer.embedding import HashingEmbedder, model_id, split_model_id
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.state import ServiceState


class BackendHashingEmbedder(HashingEmbedder):
    """The hashing embedder, claiming to run on some backend."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend


def test_backend_setting_defaults_to_torch_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().embed_backend == "torch"
    monkeypatch.setenv("NOTESQA_EMBED_BACKEND", "torch")
    monkeypatch.setenv("NOTESQA_EMBED_THREADS", "1")
    settings = Settings()
    assert (settings.embed_backend, settings.embed_threads) == ("torch", 1)
    monkeypatch.setenv("NOTESQA_EMBED_BACKEND", "cuda")
    with pytest.raises(ValidationError):
        Settings()


def test_model_id_names_the_backend_and_round_trips() -> None:
    assert model_id("default", "torch") == "default"  # as indexes from before backends
    assert model_id("default", "onnx-int8") == "default+onnx-int8"
    assert model_id("hashing", "onnx-int8") == "hashing"
    for name in ("default", "default+onnx", "default+onnx-int8", "/models/a+b"):
        model, backend = split_model_id(name)
        assert model_id(model, backend) == name
    assert split_model_id("/models/a+b") == ("/models/a+b", "torch")


def _settings(tmp_path: Path, notes_corpus: Path, backend: str) -> Settings:
    return Settings(
        corpus=[notes_corpus],
        index_dir=tmp_path / "index",
        feedback_db=tmp_path / "feedback.sqlite3",
        model="fake",
        embed_backend=backend,  # type: ignore[arg-type]
    )


def test_index_records_the_backend_that_built_it_and_the_service_refuses_another(
    tmp_path: Path, notes_corpus: Path
) -> None:
    built = _settings(tmp_path, notes_corpus, "onnx-int8")
    build_index(built, BackendHashingEmbedder("onnx-int8"), Tokenizer())
    assert load_index(built.index_dir).manifest.model == "fake+onnx-int8"

    same = ServiceState(built, embedder=BackendHashingEmbedder("onnx-int8"))
    assert same.reload().outcome == "loaded"

    other = _settings(tmp_path, notes_corpus, "torch")
    state = ServiceState(other, embedder=BackendHashingEmbedder("torch"))
    outcome = state.reload()
    assert outcome.outcome == "failed"
    assert outcome.reason is not None
    assert "fake+onnx-int8" in outcome.reason and "NOTESQA_EMBED_BACKEND" in outcome.reason


def test_vectors_of_another_backend_are_not_reused(tmp_path: Path, notes_corpus: Path) -> None:
    settings = _settings(tmp_path, notes_corpus, "torch")
    build_index(settings, BackendHashingEmbedder("torch"), Tokenizer())
    assert load_index(settings.index_dir).manifest.model == "fake"
    report = build_index(settings, BackendHashingEmbedder("onnx-int8"), Tokenizer())
    assert load_index(settings.index_dir).manifest.model == "fake+onnx-int8"
    assert report.reused == 0


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "min_cosine"), [("onnx", 0.9999), ("onnx-int8", 0.98)])
def test_real_default_model_on_onnx_ranks_like_torch(  # type: ignore[no-untyped-def]
    real_embedder, backend: str, min_cosine: float
) -> None:
    from indexer.embedding import load_embedder
    from tests.conftest import cache_root

    embedder = load_embedder("default", cache_root(), backend=backend)
    assert getattr(embedder, "backend", None) == backend
    question = ["怎么查看一个 Pod 的日志？"]
    passages = [
        "使用 kubectl logs 命令可以查看 Pod 中容器的日志输出。",
        "今天中午食堂的红烧肉很好吃，大家排了很长的队。",
        "Service 为一组 Pod 提供稳定的访问地址和负载均衡。",
    ]
    q = embedder.encode_queries(question)
    p = embedder.encode_passages(passages)
    scores = (p @ q.T).ravel()
    assert scores[0] > scores[2] > scores[1]
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    # Close to the torch fp32 vectors of the same texts.
    cosine = (p * real_embedder.encode_passages(passages)).sum(axis=1)
    assert cosine.min() > min_cosine, cosine
    assert float((q * real_embedder.encode_queries(question)).sum()) > min_cosine


def test_onnx_export_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer import onnx_backend

    model_dir = tmp_path / "models" / "m"
    model_dir.mkdir(parents=True)

    def broken(model_dir: Path, out: Path, backend: str) -> None:
        (out / "model_qint8.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_backend, "export_onnx", broken)
    with pytest.raises(KeyboardInterrupt):
        onnx_backend.ensure_onnx_model(model_dir, "onnx-int8")
    assert not onnx_backend.is_exported(model_dir, "onnx-int8")
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["m", "m-onnx-int8.lock"]

    calls: list[str] = []

    def fake(model_dir: Path, out: Path, backend: str) -> None:
        calls.append(backend)
        (out / "model_qint8.onnx").write_bytes(b"onnx")

    monkeypatch.setattr(onnx_backend, "export_onnx", fake)
    path = onnx_backend.ensure_onnx_model(model_dir, "onnx-int8")
    assert path == model_dir.parent / "m-onnx-int8" / "model_qint8.onnx"
    assert onnx_backend.ensure_onnx_model(model_dir, "onnx-int8") == path
    assert calls == ["onnx-int8"]  # exported once
