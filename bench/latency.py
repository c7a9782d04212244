"""Query latency: `/ask` through a real uvicorn server, warm, sequential, over the tuning
questions: p50/p95/p99 of the round trip and of every stage the service reports
(timings_ms), next to the query embedding alone (the same model in this process, the same
questions) and GET /healthz (the HTTP floor). Shared by the scale part, which runs the same
on synthetic indexes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Json,
    Options,
    dir_size_mb,
    load_embedder,
    median,
    questions,
    real_index,
    rss_mb,
    say,
    serving,
    summary,
    time_embedding,
)

WARM_UP = 10


def ask_sequential(base: str, asked: Sequence[str]) -> tuple[list[float], dict[str, list[float]],
                                                              int, int]:
    """Round-trip ms per question, each stage's ms, answered count, errors."""
    total: list[float] = []
    stages: dict[str, list[float]] = {}
    found = errors = 0
    with httpx.Client(base_url=base, timeout=600) as client:
        for q in asked[:WARM_UP]:
            client.post("/ask", json={"question": q})
        for q in asked:
            t = time.perf_counter()
            r = client.post("/ask", json={"question": q})
            total.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                errors += 1
                continue
            body = r.json()
            found += bool(body.get("found"))
            timings = body.get("timings_ms") or {}
            for key, value in timings.items():
                stages.setdefault(key, []).append(float(value))
            if "total" in timings:  # HTTP, validation, storing the question, logging
                stages.setdefault("outside_pipeline", []).append(total[-1] - timings["total"])
    return total, stages, found, errors


def healthz(base: str, n: int = 200) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(n):
            t = time.perf_counter()
            client.get("/healthz")
            out.append((time.perf_counter() - t) * 1000)
    return out


def serve_and_ask(opts: Options, index_dir: Path, work: Path, runs: int, embedder: Any,
                  asked: Sequence[str], env: dict[str, str] | None = None) -> Json:
    """`runs` times: start a server (cold start), ask every question, read its RSS; the
    embedding alone is timed in this process right after each run's questions, while the
    server sits idle."""
    cold, rss_start, rss_end = [], [], []
    total: list[float] = []
    stages: dict[str, list[float]] = {}
    embed: list[float] = []
    health: list[float] = []
    found = errors = 0
    for run in range(runs):
        say(f"  server run {run + 1}/{runs} on {index_dir}")
        with serving(opts, index_dir, work, env=env) as server:
            cold.append(server.cold_start_s)
            rss_start.append(rss_mb(server.proc.pid))
            say(f"  ready in {server.cold_start_s:.1f} s, RSS {rss_start[-1]} MB; "
                f"asking {len(asked)} questions")
            t, s, f, e = ask_sequential(server.base, asked)
            total += t
            for key, values in s.items():
                stages.setdefault(key, []).extend(values)
            found += f
            errors += e
            rss_end.append(rss_mb(server.proc.pid))
            health += healthz(server.base)
            embed += time_embedding(embedder, asked)
    return {
        "runs": runs,
        "questions_per_run": len(asked),
        "answered": found,
        "errors": errors,
        "cold_start_s": round(median(cold), 2),
        "rss_after_start_mb": round(median(rss_start), 1),
        "rss_after_questions_mb": round(median(rss_end), 1),
        "ask_ms": summary(total),
        "stages_ms": {k: summary(v) for k, v in sorted(stages.items())},
        "embed_alone_ms": summary(embed),
        "healthz_ms": summary(health),
        "index_mb": dir_size_mb(index_dir / "current"),
        "raw": {"cold_start_s": cold, "rss_after_start_mb": rss_start,
                "rss_after_questions_mb": rss_end, "ask_ms": total, "embed_alone_ms": embed},
    }


def search_comparison(index_dir: Path, embedder: Any, asked: Sequence[str]) -> Json:
    """The service's Retriever and the baseline in-process on the real index."""
    import numpy as np

    from bench import baseline
    from indexer.build import bm25_tokens
    from indexer.settings import Settings
    from indexer.store import load_index
    from indexer.tokenization import Tokenizer

    index = load_index(index_dir)
    queries = baseline.prepare(baseline.analyzer_for(index), embedder, asked)
    service = baseline.measure_retriever(baseline.retriever_for(index, embedder), queries)
    tok = Tokenizer()
    weight = Settings().heading_weight
    tokens = [bm25_tokens(c, tok, weight) for c in index.chunks]
    candidates, dense_weight = baseline.fusion_settings()
    base = baseline.Baseline(tokens, index.vectors(), index.sentence_vectors(),
                             np.array([s.chunk for s in index.sentences], dtype=np.int64),
                             candidates, dense_weight)
    common = baseline.measure(base, queries)
    return {"chunks": len(index.chunks), "sentences": len(index.sentences),
            "service_retriever": service, "baseline": common,
            "speedup_p50": round(common["stages_ms"]["search"]["p50"]
                                 / max(service["stages_ms"]["search"]["p50"], 1e-9), 2)}


def run(opts: Options) -> Json:
    index_dir = real_index(opts)
    embedder = load_embedder(opts)
    asked = questions(opts.questions)
    say(f"latency: {len(asked)} questions, {opts.runs} runs")
    out = serve_and_ask(opts, index_dir, opts.work_dir / "latency", opts.runs, embedder, asked)
    say("latency: search stage, service Retriever vs baseline, in-process")
    out["search_comparison"] = search_comparison(index_dir, embedder, asked)
    out["index"] = str(index_dir)
    out["roots"] = [str(opts.corpus)] + ([str(opts.handbook)] if opts.handbook else [])
    return out
