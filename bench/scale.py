"""Scale: the latency measurement at 10k, 100k and 1M chunks on synthetic indexes (see
bench/synthetic.py), plus per size: service RSS, index size on disk, cold start, the FAISS
index type the build chose with its recall@10 against exact search, and the search stage
next to the baseline's (bench/baseline.py) on the same questions."""

from __future__ import annotations

import gc
import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench import baseline, latency, synthetic
from bench.common import Json, Options, load_embedder, questions, real_index, say

BIG = 100_000  # above this, one server run per size unless --scale-runs says otherwise


def _dense_files(build: Path) -> list[Path]:
    return sorted(build.glob("*.faiss"))


def index_types(build: Path) -> Json:
    """What the build says it used (manifest `dense_index` or similar, when the store
    records it), else the FAISS class read back from each .faiss file."""
    import faiss

    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    out: Json = {k: v for k, v in manifest.items() if "index" in k and k != "files"}
    for path in _dense_files(build):
        try:
            idx = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            idx = faiss.read_index(str(path))
        out[path.name] = type(faiss.downcast_index(idx)).__name__
        del idx
    return out


def recall_at_10(build: Path, name: str, exact: np.ndarray, queries: np.ndarray) -> float:
    """Share of the brute-force numpy top 10 (inner product on the same normalised vectors)
    that the built FAISS index returns in its top 10. Ties count: a returned row as similar
    as the exact 10th (to 1e-5) is a hit, since replicas can be equally close."""
    import faiss

    import indexer.store as store

    # As the service reads it: the store's own reader sets its search parameters (efSearch).
    reader = getattr(store, "_read_dense", None)
    idx = reader(build / name) if reader is not None else faiss.read_index(str(build / name))
    _, got = idx.search(queries, 10)
    del idx
    hits = 0
    for start in range(0, len(queries), 16):
        sims = queries[start : start + 16] @ exact.T
        tenth = -np.partition(-sims, 9, axis=1)[:, 9]
        for row, ids in enumerate(got[start : start + 16]):
            ids = ids[ids >= 0]
            hits += int(np.sum(sims[row, ids] >= tenth[row] - 1e-5))
    return round(hits / (10 * len(queries)), 4)


def in_process(opts: Options, source: Any, index_dir: Path, size: int, noise: float,
               queries: list[baseline.Query]) -> Json:
    """Recall and the baseline, with the server stopped (memory)."""
    from indexer.build import bm25_tokens
    from indexer.settings import Settings
    from indexer.tokenization import Tokenizer

    build = (index_dir / "current").resolve()
    lay = synthetic.layout(size, np.array([s.chunk for s in source.sentences], dtype=np.int64),
                           len(source.chunks))
    vectors, sentence_vectors = synthetic.vectors_for(source, lay, noise)
    qv = np.vstack([q.vector for q in queries]).astype(np.float32)
    out: Json = {"faiss": index_types(build)}
    say(f"scale {size}: recall@10 of the built indexes against exact search")
    recall: Json = {}
    import faiss

    for path in _dense_files(build):
        try:
            ntotal = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
                                      ).ntotal
        except RuntimeError:
            ntotal = faiss.read_index(str(path)).ntotal
        matrix = (vectors if ntotal == len(vectors)
                  else sentence_vectors if ntotal == len(sentence_vectors) else None)
        if matrix is not None:
            recall[path.name] = recall_at_10(build, path.name, matrix, qv)
    out["recall_at_10"] = recall
    candidates, dense_weight = baseline.fusion_settings()
    if size > opts.baseline_max_chunks:
        out["baseline"] = {"skipped": f"more than --baseline-max-chunks "
                                      f"{opts.baseline_max_chunks} chunks"}
        return out
    sample = queries if size < 1_000_000 else queries[: opts.baseline_sample]
    say(f"scale {size}: baseline (rank_bm25 + numpy) on {len(sample)} questions")
    tok = Tokenizer()
    distinct = [bm25_tokens(c, tok, Settings().heading_weight) for c in source.chunks]
    tokens = [distinct[i] for i in lay.chunk_src.tolist()]
    base = baseline.Baseline(tokens, vectors, sentence_vectors, lay.sent_chunk,
                             candidates, dense_weight)
    out["baseline"] = baseline.measure(base, sample)
    del base
    gc.collect()
    return out


def _one_size(opts: Options, source_dir: Path, source: Any, size: int, noise: float,
              scale_runs: int | None, embedder: Any, asked: list[str],
              queries: list[baseline.Query]) -> Json:
    index_dir, meta = synthetic.build(source_dir, size, opts.work_dir, noise)
    runs = scale_runs or (opts.runs if size <= BIG else 1)
    say(f"scale {size}: serving ({runs} runs)")
    served = latency.serve_and_ask(opts, index_dir, opts.work_dir / "scale-serve", runs,
                                   embedder, asked)
    extra = in_process(opts, source, index_dir, size, noise, queries)
    row: Json = {"size": size, "build": meta, **served, **extra}
    b = extra.get("baseline", {})
    if "stages_ms" in b:
        row["speedup_search_p50"] = round(
            b["stages_ms"]["search"]["p50"]
            / max(served["stages_ms"].get("search", {}).get("p50", float("nan")), 1e-9), 2)
    return row


def run(opts: Options, noise: float = 0.1, scale_runs: int | None = None) -> Json:
    from indexer.store import load_index

    source_dir = real_index(opts)
    source = load_index(source_dir)
    embedder = load_embedder(opts)
    asked = questions(opts.questions)
    queries = baseline.prepare(baseline.analyzer_for(source), embedder, asked)
    sizes: list[Json] = []
    for size in opts.sizes:
        try:
            sizes.append(_one_size(opts, source_dir, source, size, noise, scale_runs,
                                   embedder, asked, queries))
        except Exception as exc:  # e.g. out of memory at 1M: keep the other sizes' figures
            traceback.print_exc()
            sizes.append({"size": size, "error": f"{type(exc).__name__}: {exc}"[:500]})
        gc.collect()
    _estimate_skipped(sizes)
    return {"source_index": str(source_dir), "source_chunks": len(source.chunks),
            "noise": noise, "sizes": sizes}


def _estimate_skipped(sizes: list[Json]) -> None:
    """For sizes whose baseline was skipped: its BM25 memory extrapolated linearly from the
    largest size measured (rank_bm25 keeps one dict per document)."""
    measured = [s for s in sizes if "bm25_dicts_mb" in s.get("baseline", {})]
    if not measured:
        return
    ref = max(measured, key=lambda s: s["size"])
    b_ref = ref["baseline"]
    per_chunk = max(b_ref["bm25_rss_mb"], b_ref["bm25_dicts_mb"]) / ref["size"]
    for s in sizes:
        b = s.get("baseline", {})
        if "skipped" in b:
            b["estimated_bm25_rss_mb"] = round(per_chunk * s["size"])
            b["skipped"] += (f"; rank_bm25 would need ~{b['estimated_bm25_rss_mb']:,} MB "
                             f"(linear from {ref['size']:,} chunks)")
