"""Live re-index under load: a real server (uvicorn, real model) answers a steady stream of
concurrent questions while the notes are edited, re-indexed by `notesqa index --watch` and
the new index swapped in several times. Nothing may fail, no request may stall, and the
new notes must answer.

The figures (requests, failures, p50/max latency before, during and after the swaps) are
printed and written to tests/artifacts/swap.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import NOTES, ROOT, cache_root
from tests.servers import NOTESQA, notesqa_server

pytestmark = pytest.mark.slow

SWAPS = 3
CLIENTS = 2
# No request may take longer than this while an index is rebuilt and swapped in. A warm
# answer takes ~30 ms; the rebuild runs on the same 2 cores, so a generous bound.
STALL_BOUND_S = 3.0
QUESTIONS = ["数据库密码应该放在哪里？", "Ingress 和 Service 有什么区别？", "什么是 Pod？",
             "给我一个 Deployment 的 YAML", "CronJob 是什么？", "Kafka 的分区怎么重新平衡？"]


@dataclass
class Sample:
    at: float
    seconds: float
    status: int | None  # None: the request failed without an HTTP answer


def figures(samples: list[Sample]) -> dict[str, float | int]:
    times = sorted(s.seconds * 1000 for s in samples)
    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s.status != 200),
        "p50_ms": round(statistics.median(times), 1) if times else 0.0,
        "max_ms": round(max(times), 1) if times else 0.0,
    }


def test_index_swaps_under_load_drop_and_stall_nothing(
    tmp_path: Path, default_model_dir: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / NOTES.name).write_text(NOTES.read_text("utf-8"), "utf-8")
    env = {"NOTESQA_RELOAD_POLL_SECONDS": "0.5", "NOTESQA_RATE_LIMIT_PER_MINUTE": "0"}
    with notesqa_server(tmp_path, env=env, corpus=corpus) as base:
        samples: list[Sample] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                i = n
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        status: int | None = http.post(
                            "/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]}
                        ).status_code
                    except httpx.HTTPError:
                        status = None
                    with lock:
                        samples.append(Sample(started, time.perf_counter() - started, status))
                    i += 1

        watcher_log = (tmp_path / "watch.log").open("w")
        indexer = subprocess.Popen(
            [str(NOTESQA), "index", str(corpus), "--out", str(tmp_path / "index"), "--watch",
             "--debounce", "300"],
            env={**os.environ, "NOTESQA_CACHE_DIR": str(cache_root())},
            stdout=watcher_log, stderr=subprocess.STDOUT,
        )
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            time.sleep(8)  # "before": steady state (the indexer loads its model meanwhile)
            swaps_started = time.perf_counter()
            index = httpx.get(f"{base}/readyz").json()["index"]
            for swap in range(1, SWAPS + 1):
                with (corpus / NOTES.name).open("a", encoding="utf-8") as note:
                    note.write(f"\n\n## Zorblax{swap} 对象\n\nZorblax{swap} 是第 {swap} 次热更新"
                               f"加入的对象，用来验证索引切换。\n")
                deadline = time.monotonic() + 120
                while (now := httpx.get(f"{base}/readyz").json()["index"]) == index:
                    assert time.monotonic() < deadline, (tmp_path / "watch.log").read_text()
                    time.sleep(0.1)
                index = now
            swaps_ended = time.perf_counter()
            time.sleep(5)  # "after"
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
            indexer.terminate()
            indexer.wait(timeout=30)
            watcher_log.close()

        answer = httpx.post(f"{base}/ask", json={"question": f"Zorblax{SWAPS} 是什么？"}).json()

    before = [s for s in samples if s.at < swaps_started]
    during = [s for s in samples if swaps_started <= s.at < swaps_ended]
    after = [s for s in samples if s.at >= swaps_ended]
    report = {
        "swaps": SWAPS, "clients": CLIENTS, "swap_seconds": round(swaps_ended - swaps_started, 1),
        "stall_bound_ms": STALL_BOUND_S * 1000,
        "before": figures(before), "during": figures(during), "after": figures(after),
        "total": figures(samples),
    }
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "swap.json").write_text(json.dumps(report, indent=2), "utf-8")
    print("swap test:", json.dumps(report))

    assert min(len(before), len(during), len(after)) > 20, report
    assert report["total"]["failed"] == 0, report
    assert report["during"]["max_ms"] <= STALL_BOUND_S * 1000, report
    assert answer["found"] is True
    assert any(f"Zorblax{SWAPS} 对象" in c["heading"] for c in answer["citations"]), answer
