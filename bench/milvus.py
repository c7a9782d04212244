"""Milvus: the same synthetic indexes as bench/scale.py (10k, 100k chunks), published to a
`milvus-lite server` process and served by a replica with NOTESQA_MILVUS_URI, side by side
with the embedded backend on the same questions in the same run: /ask latency, the
replica's RSS after start and after the questions, and the engine's own RSS.

milvus-lite is Milvus's single-process Python edition (for tests and laptops): its search
is a Python scan whose cost grows with the collection, so its latency says nothing of a
Milvus cluster's. What this part measures that does carry over: the replica's memory,
which should not grow with the corpus, and the publishing cost per row."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import latency, synthetic
from bench.common import (
    Json,
    Options,
    clean,
    free_port,
    load_embedder,
    questions,
    real_index,
    rss_mb,
    say,
    stop,
)

QUESTIONS = 40  # milvus-lite answers a question in seconds at 100k
SIZES = (10_000, 100_000)


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    clean(data_dir)
    port = free_port()
    log = (data_dir.parent / "milvus-lite.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir",
         str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("milvus-lite server did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)
        log.close()
        clean(data_dir)


def publish(index_dir: Path, uri: str) -> float:
    """Seconds to publish the index into an empty Milvus (every row written)."""
    from indexer.milvus_sync import MilvusPublisher
    from indexer.settings import Settings
    from service.abstention import object_names
    from service.glossary import Glossary

    settings = Settings(index_dir=index_dir, milvus_uri=uri)
    started = time.perf_counter()
    MilvusPublisher(settings, object_names(Glossary.load())).publish_current()
    return time.perf_counter() - started


def _one_size(opts: Options, source_dir: Path, size: int, noise: float, runs: int,
              embedder: object, asked: list[str]) -> Json:
    index_dir, meta = synthetic.build(source_dir, size, opts.work_dir, noise)
    work = opts.work_dir / "milvus"
    work.mkdir(parents=True, exist_ok=True)
    say(f"milvus {size}: embedded backend ({runs} runs)")
    embedded = latency.serve_and_ask(opts, index_dir, work / "embedded", runs, embedder, asked)
    with milvus_lite_server(work / "data") as (uri, engine):
        say(f"milvus {size}: publishing to milvus-lite")
        seconds = publish(index_dir, uri)
        engine_rss = rss_mb(engine.pid)
        say(f"milvus {size}: published in {seconds:.0f} s; Milvus backend ({runs} runs)")
        milvus = latency.serve_and_ask(opts, index_dir, work / "replica", runs, embedder,
                                       asked, env={"NOTESQA_MILVUS_URI": uri})
        engine_after = rss_mb(engine.pid)
    return {"size": size, "build": meta, "publish_s": round(seconds, 1),
            "engine_rss_after_publish_mb": engine_rss, "engine_rss_after_questions_mb":
            engine_after, "embedded": embedded, "milvus": milvus}


def run(opts: Options, noise: float = 0.1) -> Json:
    source_dir = real_index(opts)
    embedder = load_embedder(opts)
    asked = questions(min(opts.questions, QUESTIONS))
    sizes = [s for s in opts.sizes if s <= max(SIZES)] or list(SIZES)
    out = []
    for size in sizes:
        out.append(_one_size(opts, source_dir, size, noise,
                             opts.runs if size < max(SIZES) else 1, embedder, asked))
    return {"questions": len(asked), "sizes": out}
