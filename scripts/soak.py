"""Bounded soak test: a real `notesqa serve` on loopback takes mixed traffic for a fixed
time, with a re-index and swap in the middle, then stops by itself.

Traffic (closed loop: each client sends its next request as soon as the last is answered,
so the rate is what the service sustains): `/ask` without and with `history`, note views
(text and HTML), votes on earlier answers, and bad requests (wrong types, too much history,
broken JSON, traversal, unknown answers) that must get a 4xx. Halfway, a note is edited and
`notesqa index` publishes a new build, which the server's watcher swaps in.

Reports requests served, errors (5xx, connection failures, or a good request not answered
200), p50/p95/max latency before, during and after the swap, and the server's RSS over
time. Writes the figures as JSON (``--out``) and prints a summary.

    .venv/bin/python scripts/soak.py                      # 5 minutes, the default model
    .venv/bin/python scripts/soak.py --seconds 30 --model hashing   # what CI runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import NOTESQA, free_port, wait_ready  # noqa: E402

NOTES = ROOT / "corpus" / "k8s-notes.md"

QUESTIONS = ["数据库密码应该放在哪里？", "Ingress 和 Service 有什么区别？", "什么是 Pod？",
             "给我一个 Deployment 的 YAML", "CronJob 是什么？", "Kafka 的分区怎么重新平衡？",
             "How do I expose a Deployment?", "StatefulSet 适合什么场景？"]
FOLLOW_UPS = [("StatefulSet 适合什么场景？", "那 DaemonSet 呢？"),
              ("Service 有哪几种？", "给我一个它的 YAML"),
              ("Secret 是干嘛的", "有什么作用？")]
# (what is sent, expected status class)
BAD = [
    ("ask", {"question": "Pod", "top_k": True}),
    ("ask", {"question": "   "}),
    ("ask", {"question": "Pod", "history": [{"role": "user", "content": "x"}] * 21}),
    ("ask", {"question": "Pod", "history": [{"role": "user", "content": "长" * 2001}]}),
    ("ask", {"question": "长" * 2001}),
    ("raw", b'{"question": '),
    ("note", "../pyproject.toml"),
    ("note", "%2e%2e/%2e%2e/etc/passwd"),
    ("vote", {"id": "no-such-answer", "vote": "up"}),
    ("vote", {"id": "x", "vote": "sideways"}),
]


@dataclass
class Sample:
    at: float  # seconds since the start
    kind: str
    seconds: float
    status: int | None  # None: no HTTP answer
    bad: bool  # a request meant to be refused

    @property
    def error(self) -> bool:
        if self.status is None or self.status >= 500:
            return True
        return (not 400 <= self.status < 500) if self.bad else self.status != 200


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def figures(samples: list[Sample]) -> dict[str, float | int]:
    times = [s.seconds * 1000 for s in samples]
    good = [s.seconds * 1000 for s in samples if not s.bad and s.kind.startswith("ask")]
    return {
        "requests": len(samples),
        "errors": sum(s.error for s in samples),
        "status_5xx": sum(1 for s in samples if s.status is not None and s.status >= 500),
        "p50_ms": round(statistics.median(times), 1) if times else 0.0,
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1) if times else 0.0,
        "ask_p95_ms": round(percentile(good, 0.95), 1),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run(seconds: float, clients: int, model: str, work: Path, seed: int = 12) -> dict[str, object]:
    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    shutil.copy(NOTES, corpus / NOTES.name)
    env = {
        **os.environ,
        "NOTESQA_CORPUS": json.dumps([str(corpus)]),
        "NOTESQA_INDEX_DIR": str(work / "index"),
        "NOTESQA_FEEDBACK_DB": str(work / "feedback.sqlite3"),
        "NOTESQA_MODEL": model,
        "NOTESQA_RATE_LIMIT_PER_MINUTE": "0",
        "NOTESQA_RELOAD_POLL_SECONDS": "0.5",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if model == "hashing":  # its similarities mean little: answer whatever has words
        env.update({"NOTESQA_ABSTAIN_THRESHOLD": "-0.5", "NOTESQA_ABSTAIN_THRESHOLD_DENSE": "-0.5",
                    "NOTESQA_ABSTAIN_THRESHOLD_BM25": "-0.5"})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    log = log_path.open("w")
    server = subprocess.Popen([str(NOTESQA), "serve", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    samples: list[Sample] = []
    rss: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop = threading.Event()
    answer_ids: list[str] = []
    swap: dict[str, float | str | None] = {}
    try:
        wait_ready(base, server, log_path, timeout=600)
        started = time.monotonic()

        def record(kind: str, bad: bool, t0: float, status: int | None) -> None:
            with lock:
                samples.append(Sample(t0 - started, kind, time.monotonic() - t0, status, bad))

        def client(n: int) -> None:
            rng = random.Random(seed * 100 + n)
            with httpx.Client(base_url=base, timeout=30) as http:
                while not stop.is_set():
                    roll = rng.random()
                    t0 = time.monotonic()
                    status: int | None = None
                    kind, bad = "ask", False
                    try:
                        if roll < 0.40:
                            r = http.post("/ask", json={"question": rng.choice(QUESTIONS),
                                                        "client": "web"})
                            status = r.status_code
                            if status == 200 and r.json().get("id"):
                                with lock:
                                    answer_ids.append(r.json()["id"])
                                    del answer_ids[:-200]
                        elif roll < 0.60:
                            kind = "ask-history"
                            first, follow = rng.choice(FOLLOW_UPS)
                            history = [{"role": "user", "content": first},
                                       {"role": "assistant", "content": "……"}] * rng.randint(1, 10)
                            status = http.post("/ask", json={"question": follow,
                                                             "history": history}).status_code
                        elif roll < 0.75:
                            kind = "note"
                            fmt = rng.choice(["text", "html"])
                            status = http.get(f"/notes/{NOTES.name}",
                                              params={"format": fmt}).status_code
                        elif roll < 0.85:
                            kind = "vote"
                            with lock:
                                target = rng.choice(answer_ids) if answer_ids else None
                            if target is None:
                                continue
                            status = http.post("/feedback", json={
                                "id": target, "vote": rng.choice(["up", "down"]),
                                "user": f"soak-{n}-{rng.randint(0, 50)}"}).status_code
                        else:
                            bad = True
                            what, payload = rng.choice(BAD)
                            kind = f"bad-{what}"
                            if what == "ask":
                                status = http.post("/ask", json=payload).status_code
                            elif what == "raw":
                                status = http.post("/ask", content=payload, headers={
                                    "content-type": "application/json"}).status_code
                            elif what == "note":
                                status = http.get(f"/notes/{payload}").status_code
                            else:
                                status = http.post("/feedback", json=payload).status_code
                    except httpx.HTTPError:
                        status = None
                    record(kind, bad, t0, status)

        def sample_rss() -> None:
            while not stop.is_set():
                rss.append((round(time.monotonic() - started, 1), rss_mb(server.pid)))
                stop.wait(1.0)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        threads.append(threading.Thread(target=sample_rss))
        for t in threads:
            t.start()
        try:
            time.sleep(seconds / 2)
            old = httpx.get(f"{base}/readyz").json()["index"]
            swap["started"] = round(time.monotonic() - started, 2)
            with (corpus / NOTES.name).open("a", encoding="utf-8") as note:
                note.write("\n\n## Soakium 对象\n\nSoakium 是浸泡测试中途加入的对象。\n")
            indexed = subprocess.run(
                [str(NOTESQA), "index", str(corpus), "--out", str(work / "index")],
                env=env, capture_output=True, text=True, timeout=600,
            )
            if indexed.returncode != 0:
                raise RuntimeError(indexed.stdout + indexed.stderr)
            deadline = time.monotonic() + 120
            while (now := httpx.get(f"{base}/readyz").json()["index"]) == old:
                if time.monotonic() > deadline:
                    raise TimeoutError("the new index was not swapped in")
                time.sleep(0.1)
            swap["ended"] = round(time.monotonic() - started, 2)
            swap["old"], swap["new"] = old, now
            remaining = seconds - (time.monotonic() - started)
            time.sleep(max(remaining, 3.0))
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        new_answer = httpx.post(f"{base}/ask", json={"question": "Soakium 是什么？"}).json()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    elapsed = max(s.at + s.seconds for s in samples) if samples else 0.0
    swap_start, swap_end = float(swap["started"] or 0), float(swap["ended"] or 0)
    before = [s for s in samples if s.at < swap_start]
    during = [s for s in samples if swap_start <= s.at < swap_end]
    after = [s for s in samples if s.at >= swap_end]
    # Warm-up: the first fifth of the run (caches, allocator pools, the first swap's copy).
    warm_at = elapsed / 5
    warm = [mb for at, mb in rss if at >= warm_at]
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    return {
        "seconds": round(elapsed, 1),
        "clients": clients,
        "model": model,
        "throughput_rps": round(len(samples) / elapsed, 1) if elapsed else 0.0,
        "by_kind": dict(sorted(kinds.items())),
        "swap": swap,
        "swap_answered": bool(new_answer.get("found"))
        and any("Soakium 对象" in c["heading"] for c in new_answer.get("citations", [])),
        "before": figures(before), "during": figures(during), "after": figures(after),
        "total": figures(samples),
        "unexpected": [
            {"kind": s.kind, "status": s.status, "at": round(s.at, 1)}
            for s in samples if s.error
        ][:20],
        "rss_mb": {
            "start": rss[0][1] if rss else 0.0,
            "after_warm_up": warm[0] if warm else 0.0,
            "max_after_warm_up": max(warm) if warm else 0.0,
            "end": rss[-1][1] if rss else 0.0,
            "series": rss[:: max(1, len(rss) // 30)],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "artifacts" / "soak.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="notesqa-soak-") as tmp:
        report = run(args.seconds, args.clients, args.model, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mb"}, ensure_ascii=False))
    print("rss_mb:", json.dumps({k: v for k, v in report["rss_mb"].items()  # type: ignore[union-attr]
                                 if k != "series"}))
    total = report["total"]
    assert isinstance(total, dict)
    sys.exit(1 if total["errors"] else 0)


if __name__ == "__main__":
    main()
