"""Inputs nobody may break the API with (issue 12): every endpoint fuzzed from its OpenAPI
schema by schemathesis, then the hand-written hostile cases — huge bodies, deep nesting,
invalid UTF-8 and lone surrogates, control characters and emoji, wrong types, and `history`
with thousands of turns or huge turns. All on the hashing embedder (fast)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service.app import create_app
from service.followup import MAX_TURN_CHARS, MAX_TURNS, Turn, rewrite
from service.glossary import Glossary
from tests.conftest import BACKENDS, NOTES, on_backend, publish_if_milvus


def settings_in(work: Path) -> Settings:
    return Settings(
        corpus=[work / "corpus"], index_dir=work / "index", feedback_db=work / "feedback.sqlite3",
        model="hashing", rate_limit_per_minute=0,
        abstain_threshold=-0.5, abstain_threshold_dense=-0.5, abstain_threshold_bm25=-0.5,
        # Slack on (so /slack/events checks signatures instead of answering 503 "not set
        # up"); its Web API is a closed loopback port: no fuzzed request gets past the
        # signature anyway.
        slack_bot_token="xoxb-hostile", slack_signing_secret="hostile-secret",
        slack_api_url="http://127.0.0.1:9/",
    )


def openapi() -> dict[str, object]:
    """The app's schema, read when the tests are collected (making an app loads nothing)."""
    with tempfile.TemporaryDirectory(prefix="notesqa-schema-") as tmp:
        return create_app(settings_in(Path(tmp))).openapi()


# From the dict, not over ASGI: loading it that way would run the app's lifespan per call.
schema = schemathesis.openapi.from_dict(openapi())


@pytest.fixture(scope="module", params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    work = tmp_path_factory.mktemp(f"hostile-{request.param}")
    (work / "corpus").mkdir()
    (work / "corpus" / NOTES.name).write_bytes(NOTES.read_bytes())
    settings_ = on_backend(settings_in(work), request.param, work)
    build_index(settings_, HashingEmbedder(), Tokenizer())
    publish_if_milvus(settings_)
    return create_app(settings_)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    # One client for the module: the app starts (and its index watcher runs) once.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_endpoint_from_the_openapi_schema(client: TestClient, case) -> None:  # type: ignore[no-untyped-def]
    """No 5xx, and every documented response matches its schema, for schema-generated
    requests, valid and invalid (bounded: 25 examples per operation, derandomized so CI is
    repeatable). Sent through one TestClient, so the app starts (and its index watcher
    runs) once, as in production."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("timeout", None)
    kwargs.pop("follow_redirects", None)
    if isinstance(kwargs.get("data"), bytes | str):  # raw bodies, as httpx wants them
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("cookies"):  # per-request cookies: set on the client, then cleared
        client.cookies.update(kwargs.pop("cookies"))
    else:
        kwargs.pop("cookies", None)
    response = client.request(**kwargs)
    client.cookies.clear()
    case.validate_response(
        response,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )


def post(client: TestClient, body: object) -> tuple[int, dict[str, object]]:
    try:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only JSON's \u escape can carry it
        data = json.dumps(body).encode("ascii")
    r = client.post("/ask", content=data, headers={"content-type": "application/json"})
    return r.status_code, r.json()


@pytest.mark.parametrize(
    ("top_k", "shown"),
    [(True, "true"), (False, "false"), (3.0, "3.0"), ("3", '"3"'), (None, "null"), ([3], "[3]")],
)
def test_top_k_must_be_a_real_integer(client: TestClient, top_k: object, shown: str) -> None:
    status, body = post(client, {"question": "什么是 Pod？", "top_k": top_k})
    assert status == 422
    assert body["message"] == f"请求参数有误：top_k: top_k 必须是整数，收到 {shown}"


def test_history_at_the_limits_is_answered(client: TestClient) -> None:
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": "长" * MAX_TURN_CHARS}
               for i in range(MAX_TURNS)]
    status, body = post(client, {"question": "它的 YAML 呢？", "history": history})
    assert status == 200
    assert len(str(body["rewritten_query"])) <= MAX_TURN_CHARS + 100


@pytest.mark.parametrize("turns", [MAX_TURNS + 1, 5000])
def test_too_many_turns_is_a_clear_422(client: TestClient, turns: int) -> None:
    history = [{"role": "user", "content": "Service 是什么？"}] * turns
    status, body = post(client, {"question": "那 Pod 呢？", "history": history})
    assert status == 422
    assert body["message"] == (
        f"请求参数有误：history: 对话历史太长：{turns} 轮，最多 {MAX_TURNS} 轮"
        f"（请只发送最近的 {MAX_TURNS} 轮）"
    )


@pytest.mark.parametrize("size", [MAX_TURN_CHARS + 1, 16_000, 200_000])
def test_a_huge_turn_is_a_clear_422(client: TestClient, size: int) -> None:
    history = [{"role": "user", "content": "Service 是什么？" + "长" * size}]
    status, body = post(client, {"question": "那 Pod 呢？", "history": history})
    assert status == 422
    assert "对话历史中的一轮太长" in str(body["message"])
    assert f"每轮最多 {MAX_TURN_CHARS} 个" in str(body["message"])


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post("/ask", content=b'{"question": "' + b"a" * 2_000_000 + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    "raw",
    [
        b'{"question": "\xff\xfe Pod"}',  # invalid UTF-8
        b'{"question": "Pod", "history": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deep
        b'{"question": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}",
        b'{"question": "Pod"',  # truncated
        b"\x00\x01\x02",
    ],
    ids=["invalid-utf8", "nested-lists", "nested-objects", "truncated", "binary"],
)
def test_unparsable_bodies_are_refused_without_a_crash(client: TestClient, raw: bytes) -> None:
    r = client.post("/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"question": "\ud800 Pod"},
        {"question": "Pod", "history": [{"role": "user", "content": "Service \udfff"}]},
    ],
    ids=["question", "history"],
)
def test_lone_surrogates_are_a_422_not_a_crash(client: TestClient, body: object) -> None:
    status, answer = post(client, body)
    assert status == 422
    assert "无效的 Unicode 字符" in str(answer["message"])


@pytest.mark.parametrize(
    "question",
    ["Pod\x00\x1b[31m 是什么？", "🙂🚀 Service 是什么？👍🏽", "\u202eDeployment\u200b 的 YAML",
     "<script>alert(1)</script> Secret", "'; DROP TABLE asks; --", "\r\n\t Ingress \x7f"],
)
def test_control_characters_and_emoji_are_answered(client: TestClient, question: str) -> None:
    status, body = post(client, {"question": question, "history": [
        {"role": "user", "content": question}, {"role": "assistant", "content": "😀\x00"}]})
    assert status == 200, body
    assert body["question"] == question.strip()


@pytest.mark.parametrize(
    "body",
    [
        [], "Pod", 3, None, {"question": 3}, {"question": ["Pod"]}, {"question": {"a": 1}},
        {"question": "Pod", "history": "Service"}, {"question": "Pod", "history": [1, 2]},
        {"question": "Pod", "history": [{"role": "user"}]},
        {"question": "Pod", "history": [{"role": "user", "content": 5}]},
        {"question": "Pod", "mode": 1}, {"question": "Pod", "client": "slack"},
    ],
)
def test_wrong_types_are_a_422_in_chinese(client: TestClient, body: object) -> None:
    status, answer = post(client, body)
    assert status == 422
    assert str(answer["message"]).startswith("请求参数有误：")


class CountingGlossary(Glossary):
    """Counts the characters every scan reads: the follow-up rewrite's work."""

    scanned = 0

    def mentions(self, text: str):  # type: ignore[no-untyped-def]
        CountingGlossary.scanned += len(text)
        return super().mentions(text)


@pytest.mark.parametrize("turns", [10, 1_000, 10_000])
def test_a_rewrite_reads_a_bounded_part_of_any_history(turns: int) -> None:
    """Other callers than the API (the Slack bot reads whole threads back) are not validated
    by the schema: the rewrite itself reads only the last MAX_TURNS turns, each up to
    MAX_TURN_CHARS characters, so its work is bounded whatever the history."""
    base = Glossary.load()
    glossary = CountingGlossary(base.terms)
    history = [Turn("user" if i % 2 else "assistant", "没有对象的闲聊" * 1_000)
               for i in range(turns)]
    CountingGlossary.scanned = 0
    assert rewrite("它的 YAML 呢？", history, glossary) == "它的 YAML 呢？"
    assert CountingGlossary.scanned <= (MAX_TURNS + 2) * MAX_TURN_CHARS

