#!/usr/bin/env python
"""Answer latency of this checkout against another (a baseline commit), side by side.

    git worktree add /tmp/baseline <commit>
    .venv/bin/notesqa index ../shared/corpora/kubernetes-handbook --out /tmp/hb-new
    (cd /tmp/baseline && ../main/.venv/bin/python -m service.cli index \\
        ../shared/corpora/kubernetes-handbook --out /tmp/hb-base)
    .venv/bin/python scripts/compare_ask.py --baseline /tmp/baseline --baseline-index \\
        /tmp/hb-base --index /tmp/hb-new --questions tests/eval/handbook.jsonl

Each side runs in its own process on its own code and index, in the same way (in process,
warm, sequential, `QAEngine.ask` over every question of the file), alternating rounds so
that both see the same machine. Printed: per side, the median over rounds of each round's
p50 and p95 in milliseconds. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(index: Path, questions: Path) -> None:
    from indexer.settings import Settings
    from service.cli import load_engine

    engine = load_engine(Settings(index_dir=index))
    rows = [json.loads(line) for line in questions.read_text("utf-8").splitlines() if line]
    texts = [row["question"] for row in rows]
    for text in texts[:5]:
        engine.ask(text)  # warm-up
    latencies = []
    for text in texts:
        started = time.perf_counter()
        engine.ask(text)
        latencies.append((time.perf_counter() - started) * 1000)
    print(json.dumps(latencies))


def _round(code: Path, index: Path, questions: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--index", str(index),
         "--questions", str(questions)],
        cwd=code, env=env, capture_output=True, text=True, check=True,
    ).stdout
    return [float(x) for x in json.loads(out.strip().splitlines()[-1])]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="the baseline checkout")
    parser.add_argument("--baseline-index", type=Path)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.index, args.questions)
        return
    if args.baseline is None or args.baseline_index is None:
        parser.error("--baseline and --baseline-index are required")
    sides = {"baseline": (args.baseline, args.baseline_index), "this": (ROOT, args.index)}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (code, index) in sides.items():
            latencies = _round(code, index, args.questions.resolve())
            results[name].append((_quantile(latencies, 0.5), _quantile(latencies, 0.95)))
    print(f"{args.questions.name}: {args.rounds} rounds, median of each round's p50 / p95 (ms)")
    for name, rounds in results.items():
        p50 = statistics.median(r[0] for r in rounds)
        p95 = statistics.median(r[1] for r in rounds)
        print(f"  {name:9} p50 {p50:7.1f}   p95 {p95:7.1f}")
    base = statistics.median(r[0] for r in results["baseline"])
    this = statistics.median(r[0] for r in results["this"])
    print(f"  p50 change: {100 * (this - base) / base:+.1f}%")


if __name__ == "__main__":
    main()
