"""Running it as a service: API keys, CORS, body limit, rate limit, request ids, metrics,
JSON logs. On the hashing embedder (fast); the real server runs in test_swap.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service import logs
from service.app import create_app


@pytest.fixture
def built(hashing_settings: Settings) -> Settings:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    return hashing_settings


def client_for(settings: Settings, **changes: object) -> TestClient:
    return TestClient(create_app(Settings(**{**settings.model_dump(), **changes})))


@pytest.fixture
def keyed(built: Settings) -> Iterator[TestClient]:
    with client_for(built, api_keys=["key-one", "key-two"]) as c:
        yield c


QUESTION = {"question": "Secret 是什么？"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/ask", QUESTION), ("GET", "/notes/k8s-notes.md", None),
     ("POST", "/feedback", {"id": "x", "vote": "up"}), ("POST", "/admin/reload", None)],
)
def test_with_keys_set_protected_endpoints_need_one(
    keyed: TestClient, method: str, path: str, body: object
) -> None:
    r = keyed.request(method, path, json=body)
    assert r.status_code == 401
    assert "API 密钥" in r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = keyed.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = keyed.request(method, path, json=body, headers={"Authorization": "Bearer key-two"})
    assert right.status_code != 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_without_keys_everything_is_open(built: Settings) -> None:
    with client_for(built) as c:
        assert c.post("/ask", json=QUESTION).status_code == 200


def test_cors_allows_only_listed_origins(built: Settings) -> None:
    with client_for(built, cors_origins=["https://help.example.com"], api_keys=["k"]) as c:
        preflight = {"Origin": "https://help.example.com", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}
        r = c.options("/ask", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://help.example.com"
        r = c.options("/ask", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_a_body_over_the_limit_is_refused_before_parsing(built: Settings) -> None:
    with client_for(built, max_body_bytes=4096) as c:
        huge = json.dumps({"question": "Pod", "history": [{"role": "user", "content": "x" * 5000}]})
        r = c.post("/ask", content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "请求体太大" in r.json()["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"question": "Pod", "history": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        r = c.post("/ask", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_a_client_over_the_rate_limit_gets_429_with_retry_after(built: Settings) -> None:
    with client_for(built, rate_limit_per_minute=3, api_keys=["a", "b"]) as c:
        a, b = {"Authorization": "Bearer a"}, {"Authorization": "Bearer b"}
        for _ in range(3):
            assert c.get("/notes/k8s-notes.md", headers=a).status_code == 200
        r = c.get("/notes/k8s-notes.md", headers=a)
        assert r.status_code == 429 and "请求太频繁" in r.json()["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert c.get("/notes/k8s-notes.md", headers=b).status_code == 200  # per client
        assert c.get("/healthz").status_code == 200  # probes are never limited


def test_every_response_carries_a_request_id(built: Settings) -> None:
    with client_for(built) as c:
        generated = c.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32
        given = c.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"]
        assert given == "trace-42"
        # An id that could forge log lines is replaced, not echoed.
        odd = c.get("/healthz", headers={"X-Request-ID": "a\tb{}"}).headers["x-request-id"]
        assert odd != "a\tb{}" and len(odd) == 32


def test_metrics_count_requests_stages_and_the_index(built: Settings) -> None:
    with client_for(built) as c:
        c.post("/ask", json=QUESTION)
        c.post("/ask", json={"question": ""})
        text = c.get("/metrics").text
    assert 'notesqa_http_requests_total{endpoint="/ask",method="POST",status="200"} 1.0' in text
    assert 'notesqa_http_requests_total{endpoint="/ask",method="POST",status="422"} 1.0' in text
    for stage in ("embed", "bm25", "dense", "fuse", "answer", "yaml"):
        assert f'notesqa_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'notesqa_asks_total{found="true",mode="hybrid"} 1.0' in text
    assert "notesqa_index_chunks " in text and "notesqa_index_built_timestamp_seconds " in text


def test_metrics_can_be_turned_off(built: Settings) -> None:
    with client_for(built, metrics=False) as c:
        assert c.get("/metrics").status_code == 404


def test_json_logs_carry_the_request_id(
    built: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")
    try:
        with client_for(built) as c:
            c.get("/readyz", headers={"X-Request-ID": "req-7"})
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
        access = [x for x in lines
                  if x["logger"] == "notesqa.access" and x.get("path") == "/readyz"]
        assert access and access[0]["request_id"] == "req-7" and access[0]["status"] == 200
        assert {"time", "level", "message", "ms"} <= set(access[0])
    finally:
        logging.getLogger().handlers[:] = []


def test_config_prints_settings_with_secrets_masked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from service.cli import main

    env = {"NOTESQA_API_KEYS": '["super-secret-key"]', "SLACK_BOT_TOKEN": "xoxb-very-secret",
           "NOTESQA_INDEX_DIR": str(tmp_path / "idx")}
    result = CliRunner().invoke(main, ["config"], env=env)
    assert result.exit_code == 0, result.output
    assert "super-secret-key" not in result.output and "xoxb-very-secret" not in result.output
    assert "NOTESQA_API_KEYS" in result.output and "SLACK_BOT_TOKEN" in result.output
    as_json = json.loads(CliRunner().invoke(main, ["config", "--json"], env=env).output)
    assert as_json["NOTESQA_INDEX_DIR"] == str(tmp_path / "idx")
    assert as_json["NOTESQA_API_KEYS"] == ["**********"]
    assert as_json["SLACK_BOT_TOKEN"] == "**********"


def test_the_pages_key_cookie_opens_protected_links(keyed: TestClient) -> None:
    keyed.cookies.set("notesqa_key", "key-one")
    assert keyed.get("/notes/k8s-notes.md").status_code == 200
    keyed.cookies.set("notesqa_key", "not-a-key")
    assert keyed.get("/notes/k8s-notes.md").status_code == 401
