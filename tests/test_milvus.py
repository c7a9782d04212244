"""The Milvus search backend, on milvus-lite: incremental publishing, interrupted builds,
scores that match the embedded index, and API replicas that answer alike."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest

from indexer.build import BuildReport, build_index
from indexer.embedding import HashingEmbedder
from indexer.milvus_store import collection, connect, serving_generation
from indexer.milvus_sync import MilvusPublisher, MilvusVectors, publish_to_milvus
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.glossary import Glossary
from service.milvus_backend import MilvusSource
from service.qa import QAEngine
from service.search_backend import EmbeddedBackend
from tests.conftest import NOTES, cache_root
from tests.servers import free_port, serving

HPA = "# 弹性伸缩\n\nHorizontalPodAutoscaler 根据 CPU 利用率自动调整 Deployment 的副本数量。\n"
QUOTA = "# 配额\n\nResourceQuota 限制一个命名空间能使用的 CPU、内存和对象数量。\n"


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, remembering every passage it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def encode_passages(self, texts: Sequence[str], progress=None):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return super().encode_passages(texts, progress)


@pytest.fixture
def milvus_settings(hashing_settings: Settings, tmp_path: Path) -> Settings:
    for name, text in (("hpa.md", HPA), ("quota.md", QUOTA)):
        (hashing_settings.corpus[0] / name).write_text(text, "utf-8")
    return hashing_settings.model_copy(update={"milvus_uri": str(tmp_path / "milvus.db")})


def index_and_publish(
    settings: Settings, embedder: HashingEmbedder | None = None
) -> tuple[BuildReport, MilvusPublisher]:
    """`notesqa index` with Milvus: build (vectors Milvus holds are reused), publish."""
    publisher = MilvusPublisher(settings)
    report = build_index(settings, embedder or HashingEmbedder(), Tokenizer(),
                         stored_vectors=publisher.vectors)
    publisher.publish_current()
    return report, publisher


def engine_on(settings: Settings) -> QAEngine:
    return QAEngine(MilvusSource(settings).backend(), HashingEmbedder(), Tokenizer(),
                    Glossary.load(), settings)


def chunks_in_milvus(settings: Settings) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """The chunk rows of the generation being served, by note."""
    client = connect(settings)
    generation = serving_generation(client, settings.milvus_collection)
    assert generation is not None
    rows = client.query(collection(settings.milvus_collection, generation, "chunks"),
                        filter="id >= 0", output_fields=["id", "source", "record"], limit=16_384)
    by_source: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    return by_source


def test_keyword_and_vector_scores_are_the_embedded_index_s(milvus_settings: Settings) -> None:
    index_and_publish(milvus_settings)
    embedded = EmbeddedBackend(load_index(milvus_settings.index_dir))
    milvus = MilvusSource(milvus_settings).backend()
    tokenizer = Tokenizer()

    def same(milvus_scores: dict[int, float], embedded_scores: dict[int, float]) -> bool:
        """The same chunks (by their own ids) with the same scores (float32 in bm25s)."""
        ours = {milvus.chunks[k].id: v for k, v in milvus_scores.items()}
        theirs = {embedded.chunks[k].id: v for k, v in embedded_scores.items()}
        return bool(ours) and ours.keys() == theirs.keys() and all(
            abs(ours[k] - theirs[k]) < 1e-4 for k in ours
        )

    for question in ("Deployment 怎么滚动更新", "Secret 保存密码", "Pod 调度到哪个节点",
                     "HorizontalPodAutoscaler CPU"):
        tokens = [t for t in tokenizer.tokenize(question) if t in embedded.vocabulary]
        assert same(milvus.keyword(tokens, 10), embedded.keyword(tokens, 10)), question
        vector = HashingEmbedder().encode_queries([question])
        assert same(milvus.dense(vector, 10, 4), embedded.dense(vector, 10, 4)), question


def test_an_edited_note_replaces_its_chunks_and_nothing_else_is_embedded_again(
    milvus_settings: Settings, tmp_path: Path
) -> None:
    index_and_publish(milvus_settings)
    before = chunks_in_milvus(milvus_settings)
    notes = milvus_settings.corpus[0]
    (notes / "hpa.md").write_text(HPA.replace("CPU 利用率", "内存用量"), "utf-8")
    (notes / "quota.md").unlink()
    # A fresh working folder, as in a Kubernetes Job: the vectors come from Milvus.
    fresh = milvus_settings.model_copy(update={"index_dir": tmp_path / "scratch"})
    embedder = CountingEmbedder()
    report, _ = index_and_publish(fresh, embedder)

    after = chunks_in_milvus(fresh)
    assert "quota.md" not in after
    assert all("内存用量" in json.loads(r["record"])["text"] for r in after["hpa.md"])
    assert {r["id"] for r in after["k8s-notes.md"]} == {r["id"] for r in before["k8s-notes.md"]}
    # Only the edited note's chunk and its sentence were embedded.
    assert report.embedded == 1 and embedder.embedded
    assert all("内存用量" in text for text in embedder.embedded)
    answer = engine_on(fresh).ask("HorizontalPodAutoscaler 根据什么调整副本？")
    assert answer.found and "内存用量" in answer.answer


def test_a_rebuild_with_no_change_writes_nothing(milvus_settings: Settings) -> None:
    index_and_publish(milvus_settings)
    index_and_publish(milvus_settings)  # into the other generation: everything is new there
    publisher = MilvusPublisher(milvus_settings)
    report = publisher.publish_current()  # back to the first one, which already holds it
    assert sum(report.written.values()) == 0 and sum(report.deleted.values()) == 0


def test_an_interrupted_build_leaves_the_previous_content_answering(
    milvus_settings: Settings,
) -> None:
    index_and_publish(milvus_settings)
    client = connect(milvus_settings)
    serving = serving_generation(client, milvus_settings.milvus_collection)
    (milvus_settings.corpus[0] / "hpa.md").write_text(HPA.replace("CPU 利用率", "内存用量"))
    build_index(milvus_settings, HashingEmbedder(), Tokenizer())

    def crash(part: str) -> None:
        if part == "sentences":
            raise KeyboardInterrupt  # the build is killed half-way

    with pytest.raises(KeyboardInterrupt):
        publish_to_milvus(load_index(milvus_settings.index_dir), milvus_settings, client,
                          fail_after=crash)
    assert serving_generation(client, milvus_settings.milvus_collection) == serving
    answer = engine_on(milvus_settings).ask("HorizontalPodAutoscaler 根据什么调整副本？")
    assert "CPU 利用率" in answer.answer and "内存用量" not in answer.answer

    publish_to_milvus(load_index(milvus_settings.index_dir), milvus_settings, client)
    assert serving_generation(client, milvus_settings.milvus_collection) != serving
    answer = engine_on(milvus_settings).ask("HorizontalPodAutoscaler 根据什么调整副本？")
    assert "内存用量" in answer.answer


def test_a_replica_holds_no_chunk_until_asked(milvus_settings: Settings) -> None:
    index_and_publish(milvus_settings)
    backend = MilvusSource(milvus_settings).backend()
    assert len(backend._rows._cache) == 0  # corpus-level data only
    engine = QAEngine(backend, HashingEmbedder(), Tokenizer(), Glossary.load(), milvus_settings)
    engine.ask("Secret 是用来做什么的？")
    # What one question fetched: its candidates, not the notes.
    assert 0 < len(backend._rows._cache) <= 2 * milvus_settings.candidates + 10


def test_milvus_vectors_are_only_reused_for_the_same_model(milvus_settings: Settings) -> None:
    _, publisher = index_and_publish(milvus_settings)
    key = "0" * 64
    assert MilvusVectors(publisher.client, milvus_settings.milvus_collection)(
        "another-model", [key]) == {}
    index = load_index(milvus_settings.index_dir)
    from indexer.build import embed_key

    text = index.chunks[0].embedding_text()
    found = publisher.vectors(index.manifest.model, [embed_key(text)])
    assert np.allclose(found[embed_key(text)], index.vectors()[0])


def test_an_unreachable_milvus_is_a_clear_error(hashing_settings: Settings) -> None:
    settings = hashing_settings.model_copy(
        update={"milvus_uri": f"http://127.0.0.1:{free_port()}"}
    )
    from indexer.milvus_store import MilvusIndexError

    with pytest.raises(MilvusIndexError, match="Milvus"):
        MilvusSource(settings).generation()


@pytest.fixture
def milvus_lite_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`milvus-lite server`: the same client path as a Milvus cluster."""
    port = free_port()
    log = (tmp_path / "milvus.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir",
         str(tmp_path / "milvus-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "milvus.log").read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def milvus_lite_server(milvus_lite_process: tuple[str, subprocess.Popen[bytes]]) -> str:
    return milvus_lite_process[0]


def test_two_api_processes_on_one_milvus_answer_alike(
    milvus_lite_server: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(NOTES, corpus / NOTES.name)
    (corpus / "hpa.md").write_text(HPA, "utf-8")
    env = {
        **os.environ,
        "NOTESQA_CORPUS": json.dumps([str(corpus)]),
        "NOTESQA_MODEL": "hashing",
        "NOTESQA_CACHE_DIR": str(cache_root()),
        "NOTESQA_MILVUS_URI": milvus_lite_server,
        "NOTESQA_ABSTAIN_THRESHOLD": "-0.5",
    }
    notesqa = str(Path(sys.executable).parent / "notesqa")
    built = subprocess.run([notesqa, "index", "--out", str(tmp_path / "scratch")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert "Milvus" in built.stdout
    with ExitStack() as replicas:
        bases = []
        for replica in ("one", "two"):
            port = free_port()
            (tmp_path / replica).mkdir()
            replica_env = {**env, "NOTESQA_INDEX_DIR": str(tmp_path / replica / "none"),
                           "NOTESQA_FEEDBACK_DB": str(tmp_path / replica / "feedback.sqlite3")}
            bases.append(replicas.enter_context(serving(
                [notesqa, "serve", "--no-build", "--port", str(port)], replica_env,
                tmp_path / replica / "server.log", port,
            )))
        answers = []
        for base in bases:
            assert httpx.get(f"{base}/readyz").json()["backend"] == "milvus"
            replies = []
            for question in ("Ingress 和 Service 有什么区别？", "给我一个 Deployment 的 YAML",
                             "HorizontalPodAutoscaler 根据什么调整？", "Secret 是什么？"):
                body = httpx.post(f"{base}/ask", json={"question": question}, timeout=60).json()
                body.pop("timings_ms"), body.pop("id", None)
                replies.append(body)
            answers.append(replies)
    assert answers[0] == answers[1]
    assert any(c["source"] == "hpa.md" for c in answers[0][2]["citations"])


def test_milvus_going_away_is_a_503_in_chinese_not_a_500(
    milvus_lite_process: tuple[str, subprocess.Popen[bytes]], hashing_settings: Settings
) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    uri, proc = milvus_lite_process
    settings = hashing_settings.model_copy(update={"milvus_uri": uri})
    index_and_publish(settings)
    with TestClient(create_app(settings)) as client:
        assert client.post("/ask", json={"question": "Secret 是什么？"}).status_code == 200
        proc.terminate()
        proc.wait(timeout=30)
        r = client.post("/ask", json={"question": "Pod 是什么？"})
        assert r.status_code == 503
        assert "Milvus 暂时无法访问" in r.json()["message"]
