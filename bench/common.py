"""What every measurement shares: statistics, the machine, questions, subprocesses, a real
`notesqa serve` on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NOTESQA = Path(sys.executable).parent / "notesqa"
# The tuning sets only: the held-out sets are never read here.
QUESTION_SETS = ("tests/eval/notes.jsonl", "tests/eval/handbook.jsonl")

Json = dict[str, Any]


@dataclass
class Options:
    """The command line, as every part sees it."""

    handbook: Path | None
    corpus: Path
    work_dir: Path
    model: str
    cache_dir: Path | None
    runs: int
    questions: int
    sizes: list[int]
    clients: int
    seconds: float
    soak_questions: int
    baseline_max_chunks: int
    baseline_sample: int


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..1."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def summary(values: Sequence[float]) -> Json:
    """p50/p95/p99 and count of a list of milliseconds (or any figure)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 3),
        "p95": round(percentile(values, 0.95), 3),
        "p99": round(percentile(values, 0.99), 3),
        "mean": round(statistics.fmean(values), 3) if values else float("nan"),
    }


def questions(limit: int) -> list[str]:
    """Single-turn questions of the tuning sets (notes, then handbook, interleaved), cycled
    to `limit`."""
    sets: list[list[str]] = []
    for name in QUESTION_SETS:
        rows = [json.loads(x) for x in (ROOT / name).read_text("utf-8").splitlines() if x.strip()]
        sets.append([r["question"] for r in rows if not r.get("history")])
    mixed: list[str] = []
    for i in range(max(len(s) for s in sets)):
        mixed.extend(s[i] for s in sets if i < len(s))
    if not mixed:
        raise RuntimeError("no questions found in tests/eval")
    return [mixed[i % len(mixed)] for i in range(limit)]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> Json:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git_commit": git_commit(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                           "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
    }


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def own_rss_mb() -> float:
    return rss_mb(os.getpid())


def dir_size_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return round(total / 1024 / 1024, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(opts: Options, work: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "NOTESQA_MODEL": opts.model,
        "NOTESQA_RATE_LIMIT_PER_MINUTE": "0",
        "NOTESQA_FEEDBACK_DB": str(work / "feedback.sqlite3"),
        "NOTESQA_RELOAD_POLL_SECONDS": "3600",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COLUMNS": "200",
    }
    if opts.cache_dir is not None:
        env["NOTESQA_CACHE_DIR"] = str(opts.cache_dir)
    return env


@dataclass
class Timed:
    seconds: float
    max_rss_mb: float  # peak RSS of the child (ru_maxrss of the children waited for)
    stdout: str


def run_timed(command: Sequence[str], env: dict[str, str]) -> Timed:
    """Run a command to completion: wall time and its peak RSS. RUSAGE_CHILDREN's ru_maxrss
    is the largest of all children waited for so far, so each run goes through a fresh
    `python -c` wrapper that reports its own child's figure."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "s = time.perf_counter() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stderr.write(p.stderr)\n"
        "sys.stdout.write(json.dumps({'rc': p.returncode, 's': s, 'rss_kb': r, 'out': p.stdout}))\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    if data["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {data['rc']}: "
                           f"{done.stderr[-2000:]}{data['out'][-2000:]}")
    return Timed(float(data["s"]), round(int(data["rss_kb"]) / 1024, 1), str(data["out"]))


def peak_children_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def index_corpus(opts: Options, roots: Sequence[Path], index_dir: Path) -> Timed:
    return run_timed([str(NOTESQA), "index", *map(str, roots), "--out", str(index_dir)],
                     base_env(opts, index_dir.parent))


def build_counts(index_dir: Path) -> Json:
    manifest = json.loads((index_dir / "current" / "manifest.json").read_text("utf-8"))
    sentences = len(np.load(index_dir / "current" / "sentence_rows.npy", mmap_mode="r"))
    return {"files": len(manifest["files"]), "chunks": manifest["chunk_count"],
            "sentences": sentences, "yaml": manifest["yaml_count"]}


def corpus_key(roots: Sequence[Path]) -> str:
    """A short hash of the notes' paths, sizes and times: names a cached index."""
    h = hashlib.sha256()
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def real_index(opts: Options) -> Path:
    """The index of corpus/ plus the handbook (both question sets have their notes there),
    in the work folder. `notesqa index` runs every time: it is incremental (a no-change
    rebuild takes seconds) and rebuilds an index of an older format."""
    roots = [opts.corpus] + ([opts.handbook] if opts.handbook else [])
    index_dir = opts.work_dir / f"real-{corpus_key(roots)}" / "index"
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    if index_dir not in _INDEXED:
        say(f"indexing {', '.join(map(str, roots))} -> {index_dir} (incremental)")
        index_corpus(opts, roots, index_dir)
        _INDEXED.add(index_dir)
    return index_dir


_INDEXED: set[Path] = set()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    cold_start_s: float
    log: Path


@contextmanager
def serving(opts: Options, index_dir: Path, work: Path, timeout: float = 3600,
            env: dict[str, str] | None = None) -> Iterator[Server]:
    """`notesqa serve --index DIR` on a free loopback port; yields once /readyz is 200.
    `env` adds settings (NOTESQA_MILVUS_URI: served from Milvus, DIR unused)."""
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("feedback.sqlite3*"):
        stale.unlink()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    log = log_path.open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(NOTESQA), "serve", "--port", str(port), "--index", str(index_dir)],
        env=base_env(opts, work) | (env or {}), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"server not ready: {log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        yield Server(proc, base, time.perf_counter() - started, log_path)
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill what does not exit within a minute."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_embedder(opts: Options) -> Any:
    from indexer.embedding import load_embedder as load
    from indexer.settings import Settings

    cache = opts.cache_dir or Settings().cache_dir
    return load(opts.model, cache)


def time_embedding(embedder: Any, asked: Sequence[str], warm: int = 5) -> list[float]:
    """Milliseconds of `encode_queries([q])` per question, after a few warm-up calls."""
    for q in asked[:warm]:
        embedder.encode_queries([q])
    out = []
    for q in asked:
        t = time.perf_counter()
        embedder.encode_queries([q])
        out.append((time.perf_counter() - t) * 1000)
    return out


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
