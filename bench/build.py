"""Index build: `notesqa index` end to end (texts/s, peak memory) on corpus/ and the
handbook, next to the model's raw `encode_passages` throughput on the same texts; then a
no-change rebuild, an incremental rebuild after editing one note, and edits to that note
picked up by `notesqa index --watch`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    NOTESQA,
    Json,
    Options,
    base_env,
    build_counts,
    index_corpus,
    load_embedder,
    median,
    say,
)

# "片段 2927（新嵌入 3，复用 2924）" and "句子 8000（新嵌入 5）" in the CLI's build report.
_CHUNKS = re.compile(r"片段[\s│|]*(\d+)（新嵌入\s*(\d+)，复用\s*(\d+)）")
_SENTENCES = re.compile(r"句子[\s│|]*(\d+)（新嵌入\s*(\d+)）")
EDIT = (
    "\n\n## 基准测试追加的一节\n\n"
    "这一节是基准测试在增量重建前追加的，用来测量只改一个文件时的重建时间。\n"
)


def _report(stdout: str) -> Json:
    out: Json = {}
    if m := _CHUNKS.search(stdout):
        out.update(chunks=int(m[1]), chunks_embedded=int(m[2]), chunks_reused=int(m[3]))
    if m := _SENTENCES.search(stdout):
        out.update(sentences=int(m[1]), sentences_embedded=int(m[2]))
    return out


def _edited_file(root: Path) -> Path:
    """A mid-sized note: what a typical edit touches."""
    notes = sorted(p for p in root.rglob("*.md") if p.is_file())
    by_size = sorted(notes, key=lambda p: (p.stat().st_size, str(p)))
    return by_size[len(by_size) // 2]


WATCH_EDITS = 3
WATCH_DEBOUNCE_MS = 50


def watch_edits(opts: Options, copy: Path, index_dir: Path, target: Path) -> list[float]:
    """`notesqa index --watch` (the process an author keeps running): seconds from each of
    WATCH_EDITS appends to `target` to the new build being published, less the debounce.
    The first edit loads the model (nothing needed embedding before it); later ones find
    it loaded."""
    proc = subprocess.Popen(
        [str(NOTESQA), "index", str(copy), "--out", str(index_dir), "--watch",
         "--debounce", str(WATCH_DEBOUNCE_MS)],
        env=base_env(opts, index_dir.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or ()), daemon=True)
    reader.start()
    current = index_dir / "current"
    seconds: list[float] = []
    try:
        deadline = time.monotonic() + 600
        while not any("正在监视" in line for line in output):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("notesqa index --watch did not start: " + "".join(output))
            time.sleep(0.05)
        time.sleep(0.5)  # the watcher is armed just after it says so
        for edit in range(WATCH_EDITS):
            before = os.readlink(current)
            with target.open("a", encoding="utf-8") as f:
                f.write(EDIT.replace("追加的一节", f"追加的第 {edit + 2} 节"))
            start = time.perf_counter()
            while os.readlink(current) == before:
                if proc.poll() is not None or time.perf_counter() - start > 600:
                    raise RuntimeError("no rebuild after an edit: " + "".join(output[-20:]))
                time.sleep(0.01)
            seconds.append(time.perf_counter() - start - WATCH_DEBOUNCE_MS / 1000)
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(30)
    return seconds


def _texts(index_dir: Path) -> list[str]:
    from indexer.store import load_index

    index = load_index(index_dir)
    return [c.embedding_text() for c in index.chunks] + [
        s.embedding_text(index.chunks[s.chunk]) for s in index.sentences
    ]


def bench_corpus(opts: Options, name: str, corpus: Path, embedder: object) -> Json:
    cold, nochange, incr, encode = [], [], [], []
    watch_first: list[float] = []
    watch_warm: list[float] = []
    peak: dict[str, list[float]] = {"cold": [], "no_change": [], "incremental": []}
    counts: Json = {}
    incr_reports: list[Json] = []
    edited = ""
    for run in range(opts.runs):
        with tempfile.TemporaryDirectory(prefix="notesqa-bench-build-") as tmp:
            copy = Path(tmp) / "notes"
            shutil.copytree(corpus, copy)
            index_dir = Path(tmp) / "index"
            say(f"build {name}: run {run + 1}/{opts.runs} cold")
            t = index_corpus(opts, [copy], index_dir)
            cold.append(t.seconds)
            peak["cold"].append(t.max_rss_mb)
            counts = build_counts(index_dir)
            if run == 0:
                texts = _texts(index_dir)  # those of the cold build, before the edit
            say(f"build {name}: run {run + 1}/{opts.runs} no-change rebuild")
            t = index_corpus(opts, [copy], index_dir)
            nochange.append(t.seconds)
            peak["no_change"].append(t.max_rss_mb)
            target = _edited_file(copy)
            edited = str(target.relative_to(copy))
            with target.open("a", encoding="utf-8") as f:
                f.write(EDIT)
            say(f"build {name}: run {run + 1}/{opts.runs} incremental after editing {edited}")
            t = index_corpus(opts, [copy], index_dir)
            incr.append(t.seconds)
            peak["incremental"].append(t.max_rss_mb)
            incr_reports.append(_report(t.stdout))
            say(f"build {name}: run {run + 1}/{opts.runs} {WATCH_EDITS} edits under --watch")
            edits = watch_edits(opts, copy, index_dir, target)
            watch_first.append(edits[0])
            watch_warm.extend(edits[1:])
            say(f"build {name}: run {run + 1}/{opts.runs} raw encode of {len(texts)} texts")
            start = time.perf_counter()
            embedder.encode_passages(texts)  # type: ignore[attr-defined]
            encode.append(time.perf_counter() - start)
    n_texts = counts["chunks"] + counts["sentences"]
    return {
        "corpus": name,
        "runs": opts.runs,
        **counts,
        "texts": n_texts,
        "cold_s": round(median(cold), 3),
        "cold_texts_per_s": round(n_texts / median(cold), 1),
        "encode_s": round(median(encode), 3),
        "encode_texts_per_s": round(n_texts / median(encode), 1),
        "pipeline_overhead_ratio": round(median(cold) / median(encode), 2),
        "no_change_s": round(median(nochange), 3),
        "incremental_s": round(median(incr), 3),
        "incremental_edited_file": edited,
        "incremental_report": incr_reports[-1] if incr_reports else {},
        "watch_first_edit_s": round(median(watch_first), 3),
        "watch_edit_s": round(median(watch_warm), 3),
        "peak_rss_mb": {k: round(median(v), 1) for k, v in peak.items()},
        "raw": {"cold_s": cold, "no_change_s": nochange, "incremental_s": incr,
                "encode_s": encode, "peak_rss_mb": peak, "incremental_reports": incr_reports,
                "watch_first_edit_s": watch_first, "watch_edit_s": watch_warm},
    }


def run(opts: Options) -> Json:
    embedder = load_embedder(opts)
    out: Json = {"corpora": [bench_corpus(opts, "corpus/", opts.corpus, embedder)]}
    if opts.handbook:
        out["corpora"].append(bench_corpus(opts, "handbook", opts.handbook, embedder))
    return out
