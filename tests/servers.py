"""A real `notesqa serve` (uvicorn on loopback, real model, real FAISS) for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import NOTES, cache_root

NOTESQA = Path(sys.executable).parent / "notesqa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def notesqa_server(
    work: Path, env: Mapping[str, str] | None = None, corpus: Path | None = None
) -> Iterator[str]:
    """Serve `corpus` (default: a copy of the shipped notes) from `work`; yields the base URL
    once /readyz answers 200. `env` adds or overrides settings."""
    if corpus is None:
        corpus = work / "corpus"
        corpus.mkdir()
        shutil.copy(NOTES, corpus / NOTES.name)
    port = free_port()
    full_env = {
        **os.environ,
        "NOTESQA_CORPUS": json.dumps([str(corpus)]),
        "NOTESQA_INDEX_DIR": str(work / "index"),
        "NOTESQA_FEEDBACK_DB": str(work / "feedback.sqlite3"),
        "NOTESQA_CACHE_DIR": str(cache_root()),
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    with serving([str(NOTESQA), "serve", "--port", str(port)], full_env,
                 work / "server.log", port) as base:
        yield base


def wait_ready(
    base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 300
) -> None:
    """Until `base`/readyz answers 200; the server's log is shown if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(log_path.read_text())
        time.sleep(0.3)


@contextmanager
def serving(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, port: int,
    cwd: Path | None = None, timeout: float = 300,
) -> Iterator[str]:
    """Run `command` (a server on 127.0.0.1:`port`) until /readyz answers 200; yields the
    base URL and stops the process afterwards. Its output goes to `log_path`, shown when
    it dies or never gets ready."""
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(base, proc, log_path, timeout)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
