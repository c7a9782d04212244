"""The HTTP contract, on the hashing embedder (fast). The real model runs in test_e2e.py."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service.app import create_app
from tests.conftest import BACKENDS, on_backend, publish_if_milvus


@pytest.fixture(params=BACKENDS)
def served(
    request: pytest.FixtureRequest, hashing_settings: Settings, tmp_path: Path
) -> Settings:
    """The settings of `client`: on each search backend in turn."""
    return on_backend(hashing_settings, request.param, tmp_path)


@pytest.fixture
def client(served: Settings) -> Iterator[TestClient]:
    build_index(served, HashingEmbedder(), Tokenizer())
    publish_if_milvus(served)
    with TestClient(create_app(served)) as c:
        yield c


def test_ask_returns_the_contract(client: TestClient) -> None:
    r = client.post("/ask", json={"question": "Secret 是用来做什么的？"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {
        "question", "found", "answer", "snippets", "citations", "yaml_examples", "timings_ms",
        "rewritten_query",
    }
    assert body["found"] is True
    assert len(body["snippets"]) <= 3
    ids = {c["id"] for c in body["citations"]}
    assert {s["citation"] for s in body["snippets"]} <= ids
    for citation in body["citations"]:
        assert citation["source"] == "k8s-notes.md"
        start, end = citation["lines"]
        assert 1 <= start <= end <= 298
        assert citation["url"] == f"/notes/k8s-notes.md#L{start}-L{end}"
        assert set(citation["scores"]) == {"bm25", "dense", "fused"}
    assert "敏感信息" in body["answer"]
    assert body["answer"].rstrip().endswith("]")
    assert {"embed", "search", "total"} <= set(body["timings_ms"])


def test_every_answer_sentence_carries_a_known_marker(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "Ingress 和 Service 有什么区别？"}).json()
    import re

    markers = [int(m) for m in re.findall(r"\[(\d+)\]", body["answer"])]
    assert markers
    assert set(markers) <= {c["id"] for c in body["citations"]}
    assert len(body["answer"]) <= 300
    kinds = [e["kind"] for e in body["yaml_examples"]]
    assert "Ingress" in kinds and "Service" in kinds


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"question": ""}, "问题不能为空"),
        ({"question": "   \n"}, "问题不能为空"),
        ({"question": "长" * 2001}, "问题太长"),
        ({"question": "Pod", "top_k": 0}, "top_k"),
        ({"question": "Pod", "top_k": 11}, "top_k"),
        ({"question": "Pod", "mode": "magic"}, "mode"),
        ({"top_k": 3}, "缺少必填字段"),
        ({"question": "Pod", "history": [{"role": "system", "content": "x"}]}, "history"),
    ],
)
def test_bad_input_is_a_422_with_a_message(
    client: TestClient, payload: dict[str, object], fragment: str
) -> None:
    r = client.post("/ask", json=payload)
    assert r.status_code == 422
    assert fragment in r.json()["message"]


def test_malformed_json_is_a_422(client: TestClient) -> None:
    r = client.post("/ask", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in r.json()["message"]


def test_health_readiness_and_notes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["chunks"] > 10
    note = client.get("/notes/k8s-notes.md")
    assert note.status_code == 200
    assert note.text.splitlines()[179].startswith("- **定义**：Secret")
    # Traversal is tested over a raw socket in test_hostile_paths.py: a client like this
    # one normalises "/notes/../x" before sending, so the server would never see it.
    assert client.get("/notes/missing.md").status_code == 404
    assert client.get("/docs").status_code == 200
    assert "notesqa_asks" in client.get("/metrics").text


def test_not_ready_without_an_index(tmp_path: Path) -> None:
    settings = Settings(corpus=[tmp_path], index_dir=tmp_path / "none", model="hashing",
                    feedback_db=tmp_path / "fb.sqlite3")
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "notesqa index" in r.json()["reason"]
        r = c.post("/ask", json={"question": "Pod 是什么？"})
        assert r.status_code == 503
        assert "尚未就绪" in r.json()["message"]


def test_a_newly_published_index_is_picked_up(
    client: TestClient, served: Settings, notes_corpus: Path
) -> None:
    (notes_corpus / "hpa.md").write_text(
        "# HPA\n\nHorizontalPodAutoscaler 根据 CPU 利用率自动调整副本数量。\n", "utf-8"
    )
    before = client.get("/readyz").json()["index"]
    build_index(served, HashingEmbedder(), Tokenizer())
    publish_if_milvus(served)
    # The watcher loads it in the background (every reload_poll_seconds); no request waits.
    deadline = time.monotonic() + 20
    while client.get("/readyz").json()["index"] == before:
        assert time.monotonic() < deadline, "the new index was not picked up"
        time.sleep(0.2)
    body = client.post("/ask", json={"question": "HorizontalPodAutoscaler 根据什么调整？"}).json()
    assert any(c["source"] == "hpa.md" for c in body["citations"])


def test_admin_reload_loads_a_new_index_at_once_and_reports_a_broken_one(
    hashing_settings: Settings, notes_corpus: Path
) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    slow = hashing_settings.model_copy(update={"reload_poll_seconds": 3600})
    with TestClient(create_app(slow)) as c:
        assert c.post("/admin/reload").json()["outcome"] == "unchanged"
        (notes_corpus / "hpa.md").write_text("# HPA\n\nHPA 按 CPU 调整副本数。\n", "utf-8")
        report = build_index(slow, HashingEmbedder(), Tokenizer())
        r = c.post("/admin/reload")
        assert r.json() == {"outcome": "loaded", "index": report.index_path.name, "reason": None}
        # A newer build with a corrupt file: refused once, the old index keeps serving.
        (notes_corpus / "more.md").write_text("# 更多\n\nPod 是最小单元。\n", "utf-8")
        broken = build_index(slow, HashingEmbedder(), Tokenizer()).index_path
        (broken / "chunks.jsonl").write_text("{not json", "utf-8")
        r = c.post("/admin/reload")
        assert r.status_code == 503 and r.json()["outcome"] == "failed"
        assert broken.name in r.json()["reason"]
        assert c.post("/admin/reload").json()["outcome"] == "unchanged"  # not re-tried
        ready = c.get("/readyz").json()
        assert ready["index"] == report.index_path.name and broken.name in ready["reload_error"]
        assert c.post("/ask", json={"question": "HPA 按什么调整？"}).status_code == 200
        assert 'notesqa_index_reloads_total{outcome="failed"} 1.0' in c.get("/metrics").text


def test_app_factories_do_not_share_state(hashing_settings: Settings, tmp_path: Path) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    other = Settings(corpus=[tmp_path], index_dir=tmp_path / "none", model="hashing",
                    feedback_db=tmp_path / "fb.sqlite3")
    with TestClient(create_app(hashing_settings)) as a, TestClient(create_app(other)) as b:
        assert a.get("/readyz").status_code == 200
        assert b.get("/readyz").status_code == 503


def test_an_answer_can_be_voted_on(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "Secret 是用来做什么的？", "client": "web"}).json()
    assert body["id"]
    r = client.post("/feedback", json={"id": body["id"], "vote": "down", "user": "u-1"})
    assert r.status_code == 200
    assert r.json() == {"id": body["id"], "vote": "down", "up": 0, "down": 1}
    state = client.app.state.notesqa  # type: ignore[attr-defined]
    kept = state.feedback.get_ask(body["id"])
    assert kept.source == "web" and kept.question == "Secret 是用来做什么的？"


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        ({"id": "nope", "vote": "up"}, 404, "没有这条回答"),
        ({"id": "x", "vote": "maybe"}, 422, "vote 只能是 up 或 down"),
        ({"vote": "up"}, 422, "缺少必填字段"),
    ],
)
def test_bad_feedback_is_refused_in_chinese(
    client: TestClient, payload: dict[str, object], status: int, phrase: str
) -> None:
    r = client.post("/feedback", json=payload)
    assert r.status_code == status
    assert phrase in r.json()["message"]


def test_a_declined_question_suggests_the_closest_sections(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "Kafka 的分区怎么重新平衡？"}).json()
    assert body["found"] is False
    assert body["suggestions"], body
    first = body["suggestions"][0]
    assert first["url"].startswith("/notes/k8s-notes.md#L")
    assert first["heading"]


def test_slack_endpoint_without_slack_settings_says_what_is_missing(client: TestClient) -> None:
    r = client.post("/slack/events", json={"type": "url_verification", "challenge": "x"})
    assert r.status_code == 503
    assert "SLACK_BOT_TOKEN" in r.json()["message"]


def test_an_index_serves_its_notes_without_the_corpus_and_as_indexed(
    hashing_settings: Settings, notes_corpus: Path, tmp_path: Path
) -> None:
    """Built in one place, served from another with the corpus gone: the notes come from
    the index, and a note edited after indexing is still shown as the lines cited."""
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    indexed = (notes_corpus / "k8s-notes.md").read_text("utf-8")
    moved = tmp_path / "elsewhere" / "index"
    shutil.copytree(hashing_settings.index_dir, moved, symlinks=True)
    (notes_corpus / "k8s-notes.md").write_text("# 改过了\n\n全新的内容。\n", "utf-8")
    shutil.rmtree(hashing_settings.index_dir)
    manifest = json.loads((moved / "current" / "manifest.json").read_text("utf-8"))
    assert str(tmp_path) not in json.dumps(manifest["files"])  # no absolute paths per file
    with TestClient(create_app(hashing_settings.model_copy(update={"index_dir": moved}))) as c:
        body = c.post("/ask", json={"question": "Secret 是用来做什么的？"}).json()
        citation = body["citations"][0]
        r = c.get(citation["url"].split("#")[0])
        assert r.status_code == 200 and r.text == indexed
        start, end = citation["lines"]
        cited = "\n".join(r.text.split("\n")[start - 1 : end])
        assert "Secret" in cited


@pytest.mark.parametrize(
    ("request_kwargs", "status", "phrase"),
    [
        ({"method": "POST", "url": "/ask", "content": b'{"question": "\xff\xfe"}',
          "headers": {"Content-Type": "application/json"}}, 400, "无法解析"),
        ({"method": "GET", "url": "/no/such/page"}, 404, "没有这个地址"),
        ({"method": "DELETE", "url": "/ask"}, 405, "不支持"),
    ],
)
def test_framework_errors_are_in_chinese_too(
    client: TestClient, request_kwargs: dict[str, object], status: int, phrase: str
) -> None:
    r = client.request(**request_kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert phrase in r.json()["message"]
