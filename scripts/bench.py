#!/usr/bin/env python
"""Benchmarks for the numbers the README and issues report. Not a test: these machines are
noisy, so every figure is a median over several runs, printed next to a baseline measured
in the same run.

    .venv/bin/python scripts/bench.py                       # corpus/ only
    .venv/bin/python scripts/bench.py --handbook ../shared/corpora/kubernetes-handbook

Measures
- index build: cold (fresh index folder) vs baseline = a no-change rebuild (all vectors reused)
- /ask latency over HTTP, warm, sequential, 100 questions: hybrid, vs baselines
  GET /healthz (HTTP floor) and mode=bm25 (no model call)
- service RSS after start-up and after the 100 warm questions
- cold start (spawn -> /readyz 200) vs baseline = importing torch + sentence-transformers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
NOTESQA = Path(sys.executable).parent / "notesqa"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_index(corpus: Path, index_dir: Path) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    subprocess.run(
        [str(NOTESQA), "index", str(corpus), "--out", str(index_dir)],
        check=True,
        capture_output=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    seconds = time.perf_counter() - started
    manifest = json.loads((index_dir / "current" / "manifest.json").read_text("utf-8"))
    sentences = sum(1 for _ in (index_dir / "current" / "sentences.jsonl").open(encoding="utf-8"))
    return seconds, {
        "files": len(manifest["files"]),
        "chunks": manifest["chunk_count"],
        "sentences": sentences,
        "yaml": manifest["yaml_count"],
    }


def bench_build(corpus: Path, runs: int) -> dict[str, object]:
    cold, warm = [], []
    counts: dict[str, int] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            index_dir = Path(tmp) / "index"
            seconds, counts = run_index(corpus, index_dir)
            cold.append(seconds)
            warm.append(run_index(corpus, index_dir)[0])
    return {"cold_s": median(cold), "no_change_rebuild_s": median(warm), "runs": runs, **counts}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(index_dir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(NOTESQA), "serve", "--port", str(port), "--index", str(index_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.perf_counter() - started > 300:
            raise RuntimeError("server did not become ready")
        time.sleep(0.05)
    return proc, base, time.perf_counter() - started


def questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "tests/eval/notes.jsonl").open(encoding="utf-8")]
    single = [r["question"] for r in rows if not r.get("history")]
    return (single * 2)[:100]


def bench_service(index_dir: Path, runs: int) -> dict[str, float]:
    import_floor, cold, rss_start, rss_warm = [], [], [], []
    hybrid, bm25, health = [], [], []
    asked = questions()
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import torch, sentence_transformers, faiss"], check=True
        )
        import_floor.append(time.perf_counter() - t0)
        proc, base, seconds = start_server(index_dir)
        try:
            cold.append(seconds)
            rss_start.append(rss_mb(proc.pid))
            with httpx.Client(base_url=base, timeout=30) as client:
                for q in asked[:10]:  # warm-up
                    client.post("/ask", json={"question": q})
                for q in asked:
                    t = time.perf_counter()
                    client.post("/ask", json={"question": q}).raise_for_status()
                    hybrid.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    client.post("/ask", json={"question": q, "mode": "bm25"}).raise_for_status()
                    bm25.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    client.get("/healthz").raise_for_status()
                    health.append((time.perf_counter() - t) * 1000)
            rss_warm.append(rss_mb(proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "ask_hybrid_p50_ms": median(hybrid),
        "ask_hybrid_p95_ms": percentile(hybrid, 0.95),
        "ask_bm25_p50_ms": median(bm25),
        "ask_bm25_p95_ms": percentile(bm25, 0.95),
        "healthz_p50_ms": median(health),
        "healthz_p95_ms": percentile(health, 0.95),
        "rss_after_start_mb": median(rss_start),
        "rss_after_warm_mb": median(rss_warm),
        "cold_start_s": median(cold),
        "import_floor_s": median(import_floor),
        "runs": runs,
        "questions_per_run": len(asked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--handbook", type=Path, help="also benchmark indexing this corpus")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--handbook-runs", type=int, default=1)
    args = parser.parse_args()

    results: dict[str, object] = {}
    results["build_corpus"] = bench_build(args.corpus, args.runs)
    if args.handbook:
        results["build_handbook"] = bench_build(args.handbook, args.handbook_runs)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        run_index(args.corpus, index_dir)
        results["service"] = bench_service(index_dir, args.runs)
        shutil.rmtree(index_dir, ignore_errors=True)
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
