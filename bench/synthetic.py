"""Synthetic indexes of N chunks, built in-process from a real index: its chunks replicated
with distinct ids (sources and lines kept, so citations still resolve), their chunk and
sentence vectors perturbed with small seeded noise and re-normalised, the BM25 tokens of
each distinct chunk computed once and shared by its replicas. Written with the indexer's own
`write_build` (keyword arguments only) and published, so the service loads it as any index.

Cached under the work folder, keyed by size, source build and the indexer's store code."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Json, dir_size_mb, run_timed, say

SEED = 20261128
BLOCK = 65_536


def perturbed(base: np.ndarray, rows: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """base[rows] + noise (norm ~`noise`), L2-normalised; rows that are their own source
    (the first copy) are kept exact. Deterministic: the same call gives the same matrix, so
    recall and the baseline can regenerate it instead of reading the index back."""
    n, d = len(rows), base.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    sigma = noise / np.sqrt(d)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        rng = np.random.default_rng([seed, start // BLOCK])
        block = base[rows[start:stop]] + rng.standard_normal((stop - start, d),
                                                             dtype=np.float32) * sigma
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    first = rows[: min(n, len(base))]
    exact = np.arange(len(first)) == first
    out[: len(first)][exact] = base[first[exact]]
    return out


@dataclasses.dataclass
class Layout:
    """Which source chunk and sentence each synthetic row copies."""

    chunk_src: np.ndarray  # synthetic chunk row -> source chunk row
    sent_src: np.ndarray  # synthetic sentence row -> source sentence row
    sent_chunk: np.ndarray  # synthetic sentence row -> synthetic chunk row


def layout(n_chunks: int, source_sentence_chunks: np.ndarray, base_n: int) -> Layout:
    chunk_src = np.arange(n_chunks, dtype=np.int64) % base_n
    replicas = -(-n_chunks // base_n)
    src_rows, chunks = [], []
    for r in range(replicas):
        offset = r * base_n
        keep = source_sentence_chunks + offset < n_chunks
        src_rows.append(np.nonzero(keep)[0])
        chunks.append(source_sentence_chunks[keep] + offset)
    return Layout(chunk_src, np.concatenate(src_rows), np.concatenate(chunks))


def source_key(source_dir: Path) -> str:
    """What the source index holds (its notes' hashes, model, format; not its build time:
    `notesqa index` publishes a new build even when nothing changed) and the code that
    writes the index files: a change to either builds the synthetic indexes anew."""
    import indexer.chunk_table
    import indexer.sentences
    import indexer.store
    import indexer.terms

    manifest = json.loads((source_dir / "current" / "manifest.json").read_text("utf-8"))
    content = {k: v for k, v in manifest.items() if k not in ("built_at", "build_seconds")}
    h = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    for module in (indexer.store, indexer.chunk_table, indexer.sentences, indexer.terms):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:12]


def vectors_for(source: Any, lay: Layout, noise: float) -> tuple[np.ndarray, np.ndarray]:
    return (perturbed(source.vectors(), lay.chunk_src, noise, SEED),
            perturbed(source.sentence_vectors(), lay.sent_src, noise, SEED + 1))


def _target(source_dir: Path, size: int, work_dir: Path, noise: float) -> Path:
    return work_dir / "scale" / f"{source_key(source_dir)}-n{size}-noise{noise:g}"


def build(source_dir: Path, size: int, work_dir: Path, noise: float) -> tuple[Path, Json]:
    """The synthetic index of `size` chunks and its build figures: found in the cache, or
    built now in a child process (its memory, ~10+ GB at 1M chunks, is given back before
    the server starts; its peak RSS is reported)."""
    target = _target(source_dir, size, work_dir, noise)
    meta_path = target / "bench-build.json"
    if meta_path.exists() and (target / "index" / "current").exists():
        cached: Json = json.loads(meta_path.read_text("utf-8"))
        cached["cached"] = True
        return target / "index", cached
    say(f"scale: building the synthetic index of {size} chunks in a child process -> {target}")
    timed = run_timed([sys.executable, "-m", "bench.synthetic", str(source_dir), str(size),
                       str(work_dir), repr(noise)], dict(os.environ))
    meta: Json = json.loads(meta_path.read_text("utf-8"))
    meta["peak_rss_mb"] = timed.max_rss_mb
    meta_path.write_text(json.dumps(meta, indent=2), "utf-8")
    meta["cached"] = False
    return target / "index", meta


def build_here(source_dir: Path, size: int, work_dir: Path, noise: float) -> None:
    """Build the synthetic index in this process (see `build`)."""
    from indexer.build import bm25_tokens
    from indexer.settings import Settings
    from indexer.store import load_index, publish, write_build
    from indexer.tokenization import Tokenizer

    target = _target(source_dir, size, work_dir, noise)
    meta_path = target / "bench-build.json"
    started = time.perf_counter()
    say(f"scale: building synthetic index of {size} chunks -> {target}")
    source = load_index(source_dir)
    base_n = len(source.chunks)
    lay = layout(size, np.array([s.chunk for s in source.sentences], dtype=np.int64), base_n)
    settings = Settings()
    tok = Tokenizer()
    t = time.perf_counter()
    distinct = [bm25_tokens(c, tok, settings.heading_weight) for c in source.chunks]
    tokenize_s = time.perf_counter() - t
    chunks = []
    for row, src in enumerate(lay.chunk_src.tolist()):
        c = source.chunks[src]
        chunks.append(c if row < base_n else dataclasses.replace(c, id=f"{c.id}~{row // base_n}"))
    tokens = [distinct[src] for src in lay.chunk_src.tolist()]
    sentences = [
        dataclasses.replace(source.sentences[src], chunk=chunk)
        for src, chunk in zip(lay.sent_src.tolist(), lay.sent_chunk.tolist(), strict=True)
    ]
    t = time.perf_counter()
    vectors, sentence_vectors = vectors_for(source, lay, noise)
    vectors_s = time.perf_counter() - t
    notes = {}
    for name, entry in source.manifest.files.items():
        text = source.note_text(name)
        if text is not None:
            notes[entry.sha256] = text
    manifest = dataclasses.replace(
        source.manifest, chunk_count=size, build_seconds=0.0,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
    )
    index_dir = target / "index"
    index_dir.mkdir(parents=True, exist_ok=True)
    say(f"scale: writing {size} chunks, {len(sentences)} sentences")
    t = time.perf_counter()
    extra: Json = {}
    if "names" in inspect.signature(write_build).parameters and hasattr(source, "names"):
        extra["names"] = source.names  # replicas hold the same texts: the same names occur
    written = write_build(
        index_dir=index_dir, manifest=manifest, chunks=chunks, examples=source.yaml,
        vectors=vectors, bm25_tokens=tokens, sentences=sentences,
        sentence_vectors=sentence_vectors, english=source.english, notes=notes,
        commands=source.commands, **extra,
    )
    publish(index_dir, written)
    write_s = time.perf_counter() - t
    meta: Json = {
        "size": size,
        "source": str(source_dir),
        "source_chunks": base_n,
        "sentences": len(sentences),
        "noise": noise,
        "build_s": round(time.perf_counter() - started, 1),
        "tokenize_distinct_s": round(tokenize_s, 1),
        "vectors_s": round(vectors_s, 1),
        "write_build_s": round(write_s, 1),
        "index_mb": dir_size_mb(index_dir / "current"),
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    meta_path.write_text(json.dumps(meta, indent=2), "utf-8")


if __name__ == "__main__":
    build_here(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
