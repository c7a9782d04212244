"""Paths sent over a raw socket to a real uvicorn server, byte for byte as written here: no
HTTP client normalizes `..`, decodes `%2e` or drops a NUL first, so the server sees exactly
the traversal. Whatever the spelling, the answer is never a file outside the index's notes.

(`/notes` serves the note texts stored in the index, looked up by their path relative to
the corpus root, so there is no file system path to escape from; these tests make sure it
stays that way, and that the static assets' route is as strict.)"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service.app import create_app
from tests.conftest import NOTES, ROOT
from tests.servers import free_port

# Text that only the files a traversal aims at contain.
SECRETS = (b"root:x:0:0", b"[build-system]", b"def router(", b"SLACK_", b"create_app")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    tmp = tmp_path_factory.mktemp("paths")
    corpus = tmp / "corpus"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(NOTES, corpus / NOTES.name)
    (corpus / "sub" / "inner.md").write_text("# 内层\n\n一篇在子目录里的笔记。\n", "utf-8")
    # Beside the corpus: what a traversal from /notes would reach.
    (tmp / "outside.md").write_text("# 外面\n\nSLACK_ secret outside the corpus\n", "utf-8")
    settings = Settings(corpus=[corpus], index_dir=tmp / "index", model="hashing",
                        feedback_db=tmp / "feedback.sqlite3", rate_limit_per_minute=0)
    build_index(settings, HashingEmbedder(), Tokenizer())
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield "127.0.0.1", port
    uv.should_exit = True
    thread.join(timeout=10)


def raw_request(address: tuple[str, int], target: bytes, headers: bytes = b"") -> bytes:
    """Send `GET <target>` exactly as given, no client normalising it; the whole response."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     + headers + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def raw_get(address: tuple[str, int], target: bytes) -> tuple[int, bytes]:
    """Send `GET <target>` exactly as given; returns (status, whole response)."""
    data = raw_request(address, target, b"Accept: text/plain\r\n")
    status = int(data.split(b" ", 2)[1])
    return status, data


TRAVERSALS: list[object] = [
    b"/notes/../pyproject.toml",
    b"/notes/../../../../etc/passwd",
    b"/notes/sub/../../outside.md",
    b"/notes/../outside.md",
    b"/notes/%2e%2e/pyproject.toml",
    b"/notes/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/notes/%2E%2E%2Fpyproject.toml",
    b"/notes/..%2f..%2fetc%2fpasswd",
    b"/notes/%252e%252e/%252e%252e/etc/passwd",  # double-encoded
    b"/notes/%252e%252e%252fpyproject.toml",
    b"/notes//etc/passwd",  # absolute
    b"/notes/%2Fetc%2Fpasswd",
    b"/notes/" + str(ROOT / "pyproject.toml").encode(),
    b"/notes/..\\..\\pyproject.toml",  # backslashes
    b"/notes/%5c..%5c..%5cpyproject.toml",
    b"/notes/sub%5c..%5c..%5coutside.md",
    b"/notes/k8s-notes.md%00.txt",  # NUL bytes
    b"/notes/%00../../etc/passwd",
    b"/notes/k8s-notes.md%00",
    b"/notes/..%c0%af..%c0%afetc/passwd",  # overlong UTF-8 slash
    b"/notes/%e0%80%ae%e0%80%ae/pyproject.toml",
    b"/notes/....//....//etc/passwd",
    b"/notes/./../pyproject.toml",
    b"/notes/~/.bashrc",
    b"/static/../web.py",
    b"/static/%2e%2e/web.py",
    b"/static/..%2fweb.py",
    b"/static/%252e%252e/web.py",
    b"/static/..\\web.py",
    b"/static/%00../web.py",
    b"/../../etc/passwd",
    b"/%2e%2e/%2e%2e/etc/passwd",
]


def _id(target: object) -> str:
    raw = target.values[0] if hasattr(target, "values") else target
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)


@pytest.mark.parametrize("target", TRAVERSALS, ids=[_id(t) for t in TRAVERSALS])
def test_traversal_never_leaves_the_corpus(server: tuple[str, int], target: bytes) -> None:
    status, response = raw_get(server, target)
    assert status == 404, response[:300]
    for secret in SECRETS:
        assert secret not in response, (secret, response[:500])


@pytest.mark.parametrize(
    "target",
    [b"/notes/k8s-notes.md", b"/notes/sub/inner.md", b"/notes/sub%2Finner.md",
     b"/notes/k8s-notes.md?format=text"],
)
def test_the_corpus_notes_themselves_are_served(server: tuple[str, int], target: bytes) -> None:
    status, response = raw_get(server, target)
    assert status == 200, response[:300]


@pytest.mark.parametrize(
    "target",
    [b"/notes/\x00", b"/notes/a b", b"/notes/\xff\xfe", b"/notes/" + b"a" * 20_000],
    ids=["raw-nul", "raw-space", "raw-high-bytes", "very-long"],
)
def test_malformed_request_lines_are_refused_not_crashed(
    server: tuple[str, int], target: bytes
) -> None:
    data = raw_request(server, target)
    if data:  # the HTTP parser may also just close the connection
        status = int(data.split(b" ", 2)[1])
        assert 400 <= status < 500, data[:300]
    assert httpx.get(f"http://{server[0]}:{server[1]}/healthz").status_code == 200
