"""Embedding backends side by side: query latency, passage throughput, RSS, cosine to torch.

    python scripts/embed_bench.py --index /tmp/hb-new [--passages 2000] [--queries 200]

Latencies are interleaved (each question goes through every backend in turn) so a noisy
machine slows all of them alike; medians are reported. RSS is measured in a fresh process
per backend, right after loading the model and embedding one question.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "onnx", "onnx-int8")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(backend: str) -> None:
    from indexer.embedding import load_embedder

    started = time.perf_counter()
    embedder = load_embedder("default", backend=backend)
    embedder.encode_queries(["怎么查看 Pod 的日志？"])
    print(json.dumps({"rss_mb": _rss_mb(), "load_s": time.perf_counter() - started}))


def questions(limit: int) -> list[str]:
    out: list[str] = []
    for name in ("notes.jsonl", "handbook.jsonl", "dev-notes.jsonl", "dev-handbook.jsonl"):
        for line in (ROOT / "tests" / "eval" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["question"])
    return out[:limit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return

    from indexer.embedding import load_embedder
    from indexer.store import load_index

    rss = {}
    for backend in BACKENDS:
        run = subprocess.run(
            [sys.executable, __file__, "--index", str(args.index), "--rss-child", backend],
            capture_output=True, text=True, check=True,
        )
        rss[backend] = json.loads(run.stdout.strip().splitlines()[-1])

    chunks = load_index(args.index).chunks
    step = max(1, len(chunks) // args.passages)
    texts = [c.embedding_text() for c in chunks[::step]][: args.passages]
    qs = questions(args.queries)

    rows = []
    vectors: dict[str, np.ndarray] = {}
    qvectors: dict[str, np.ndarray] = {}
    for threads in args.threads:
        embedders = {b: load_embedder("default", backend=b, threads=threads) for b in BACKENDS}
        for e in embedders.values():  # warm up
            e.encode_queries(qs[:5])
        lat: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for q in qs:
            for b, e in embedders.items():
                t = time.perf_counter()
                e.encode_queries([q])
                lat[b].append((time.perf_counter() - t) * 1000)
        # Throughput: the same slices of passages through each backend in turn.
        spent = dict.fromkeys(BACKENDS, 0.0)
        parts: dict[str, list[np.ndarray]] = {b: [] for b in BACKENDS}
        for start in range(0, len(texts), 256):
            part = texts[start : start + 256]
            for b, e in embedders.items():
                t = time.perf_counter()
                parts[b].append(e.encode_passages(part))
                spent[b] += time.perf_counter() - t
        for b, e in embedders.items():
            vectors[b] = np.vstack(parts[b])
            qvectors[b] = e.encode_queries(qs)
            rows.append((b, threads, statistics.median(lat[b]), len(texts) / spent[b]))
        del embedders

    print(f"{len(qs)} questions, {len(texts)} passages from {args.index}\n")
    print("| backend | threads | query p50 ms | passages/s |")
    print("| --- | --- | --- | --- |")
    for b, threads, p50, tput in rows:
        print(f"| {b} | {threads} | {p50:.1f} | {tput:.1f} |")
    print("\n| backend | RSS after load MB | load s | cosine to torch, passages min / median "
          "| questions min / median |")
    print("| --- | --- | --- | --- | --- |")
    for b in BACKENDS:
        pc = (vectors[b] * vectors["torch"]).sum(1)
        qc = (qvectors[b] * qvectors["torch"]).sum(1)
        print(
            f"| {b} | {rss[b]['rss_mb']:.0f} | {rss[b]['load_s']:.1f} | "
            f"{pc.min():.4f} / {np.median(pc):.4f} | {qc.min():.4f} / {np.median(qc):.4f} |"
        )


if __name__ == "__main__":
    main()
