"""A real `notesqa serve` (uvicorn on loopback, real model, real FAISS) for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
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
    log_path = work / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(NOTESQA), "serve", "--port", str(port)],
        env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text())
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(log_path.read_text())
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
