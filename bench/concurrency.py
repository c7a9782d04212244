"""Concurrency: N closed-loop clients (threads, one httpx client each) against one server
for a fixed time: throughput, latency percentiles, errors; next to what the query
embedding alone allows on the machine's cores (one process per core, one torch thread
each, encoding the same questions for the same time)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any

import httpx

from bench.common import (
    Json,
    Options,
    median,
    questions,
    real_index,
    say,
    serving,
    summary,
)


def _encode_worker(model: str, cache_dir: str | None, asked: list[str], seconds: float,
                   ready: Any, go: Any, result: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from pathlib import Path

    from indexer.embedding import load_embedder
    from indexer.settings import Settings

    embedder = load_embedder(model, Path(cache_dir) if cache_dir else Settings().cache_dir)
    for q in asked[:5]:
        embedder.encode_queries([q])
    ready.release()
    go.wait()
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        embedder.encode_queries([asked[done % len(asked)]])
        done += 1
    result.put(done)


def embedding_only(opts: Options, asked: list[str], workers: int) -> float:
    """Queries/s that `workers` processes encoding single questions reach together."""
    ctx = mp.get_context("spawn")
    ready, go, result = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    cache = str(opts.cache_dir) if opts.cache_dir else None
    procs = [ctx.Process(target=_encode_worker,
                         args=(opts.model, cache, asked, opts.seconds, ready, go, result))
             for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    go.set()
    total = sum(result.get() for _ in procs)
    for p in procs:
        p.join()
    return total / opts.seconds


def load(base: str, asked: list[str], clients: int, seconds: float) -> Json:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()
    end = start + seconds

    def client(n: int) -> None:
        i = n
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.perf_counter() < end:
                q = asked[i % len(asked)]
                i += clients
                t = time.perf_counter()
                try:
                    r = http.post("/ask", json={"question": q})
                    ok, what = r.status_code == 200, str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, what = False, type(exc).__name__
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    if ok:
                        latencies.append(ms)
                    else:
                        errors.append(what)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"elapsed_s": round(elapsed, 2), "ok": len(latencies), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:10],
            "throughput_rps": round(len(latencies) / elapsed, 2),
            "latency_ms": summary(latencies)}


def run(opts: Options) -> Json:
    index_dir = real_index(opts)
    asked = questions(max(opts.questions, 200))
    cores = len(os.sched_getaffinity(0))
    runs: list[Json] = []
    embed: list[float] = []
    for run in range(opts.runs):
        with serving(opts, index_dir, opts.work_dir / "concurrency") as server:
            with httpx.Client(base_url=server.base, timeout=120) as http:
                for q in asked[:10]:
                    http.post("/ask", json={"question": q})
            say(f"concurrency run {run + 1}/{opts.runs}: {opts.clients} clients, "
                f"{opts.seconds:g} s")
            runs.append(load(server.base, asked, opts.clients, opts.seconds))
        say(f"concurrency run {run + 1}/{opts.runs}: embedding alone, {cores} processes")
        embed.append(embedding_only(opts, asked, cores))
    best = sorted(runs, key=lambda r: r["throughput_rps"])[len(runs) // 2]
    return {
        "clients": opts.clients,
        "seconds": opts.seconds,
        "runs": opts.runs,
        "cores": cores,
        "throughput_rps": round(median([r["throughput_rps"] for r in runs]), 2),
        "p95_ms": round(median([r["latency_ms"]["p95"] for r in runs]), 1),
        "p50_ms": round(median([r["latency_ms"]["p50"] for r in runs]), 1),
        "errors": sum(r["errors"] for r in runs),
        "embedding_only_qps": round(median(embed), 2),
        "median_run": best,
        "raw": {"runs": runs, "embedding_only_qps": embed},
    }
