"""The index on disk: one folder per build, published by swapping a `current` symlink.

    <index_dir>/current -> builds/<build id>/
        manifest.json   model, dimension, per-file hashes, versions, build time
        chunks.jsonl    Chunk records, row i is FAISS id i and BM25 document i
        yaml.jsonl      YamlExample records (Chunk.yaml_ids index into this)
        sentences.jsonl SentenceRecord rows, row i is sentence-FAISS id i
        dense.faiss     IndexFlatIP over L2-normalised chunk vectors
        sentences.faiss IndexFlatIP over L2-normalised sentence vectors
        bm25/           bm25s index over jieba tokens
        english.json    English words -> the corpus's Chinese words (indexer/bilingual.py)
        notes/<sha256>.txt  each note's text as indexed, so cited lines can be shown from
                        the index alone (no corpus needed where it is served)

A build writes a fresh folder and only then replaces the symlink (os.replace is atomic), so
a reader never sees a half-written index and a failed build leaves the old one serving.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.sentences import SentenceRecord
from indexer.types import Chunk, YamlExample

FORMAT_VERSION = 3  # 3: paths relative to the corpus root, note texts inside the build
CURRENT = "current"
BUILDS = "builds"
NOTES = "notes"
KEEP_BUILDS = 2


class IndexNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class FileEntry:
    """A note in the index, keyed in the manifest by its path relative to its corpus root."""

    sha256: str  # of the raw bytes; also names its text in notes/
    encoding: str
    root: int  # which corpus root (position in Manifest.corpus_roots) it was found under
    chunks: int


@dataclass
class Manifest:
    model: str
    dimension: int
    chunk_chars: int
    files: dict[str, FileEntry]
    skipped: dict[str, str]
    versions: dict[str, str]
    built_at: str
    build_seconds: float
    chunk_count: int
    yaml_count: int
    corpus_roots: list[str] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        files = {k: FileEntry(**v) for k, v in data.pop("files").items()}
        return cls(files=files, **data)


@dataclass
class StoredIndex:
    path: Path
    manifest: Manifest
    chunks: list[Chunk]
    yaml: list[YamlExample]
    dense: faiss.Index
    bm25: bm25s.BM25
    sentences: list[SentenceRecord]
    sentence_dense: faiss.Index
    english: EnglishToChinese | None = None  # None: built before english.json existed

    def vectors(self) -> np.ndarray:
        return _all_vectors(self.dense, self.manifest.dimension)

    def sentence_vectors(self) -> np.ndarray:
        return _all_vectors(self.sentence_dense, self.manifest.dimension)

    def note_text(self, source: str) -> str | None:
        """The text of note `source` exactly as it was indexed (what line numbers refer
        to), or None when it is not a note of this index."""
        entry = self.manifest.files.get(source)
        if entry is None:
            return None
        try:
            return (self.path / NOTES / f"{entry.sha256}.txt").read_text("utf-8")
        except OSError:  # pruned after a newer build was published
            return None


def _all_vectors(index: faiss.Index, dimension: int) -> np.ndarray:
    if index.ntotal == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


def current_build(index_dir: Path) -> Path | None:
    link = index_dir / CURRENT
    if not link.exists():
        return None
    return link.resolve()


def load_index(index_dir: Path) -> StoredIndex:
    build = current_build(index_dir)
    if build is None:
        raise IndexNotFoundError(f"{index_dir} 中没有索引（先运行 notesqa index）")
    return load_build(build)


def load_build(build: Path) -> StoredIndex:
    manifest = Manifest.from_json(json.loads((build / "manifest.json").read_text("utf-8")))
    if manifest.format_version != FORMAT_VERSION:
        raise IndexNotFoundError(
            f"{build} 的索引格式版本 {manifest.format_version} 与当前版本 {FORMAT_VERSION} 不符"
        )
    chunks = [Chunk.from_json(json.loads(line)) for line in _lines(build / "chunks.jsonl")]
    examples = [YamlExample.from_json(json.loads(line)) for line in _lines(build / "yaml.jsonl")]
    dense = faiss.read_index(str(build / "dense.faiss"))
    bm25 = bm25s.BM25.load(str(build / "bm25"))
    sentences = [
        SentenceRecord.from_json(json.loads(line)) for line in _lines(build / "sentences.jsonl")
    ]
    sentence_dense = faiss.read_index(str(build / "sentences.faiss"))
    english_file = build / "english.json"
    english = (
        EnglishToChinese.from_json(json.loads(english_file.read_text("utf-8")))
        if english_file.exists()
        else None
    )
    return StoredIndex(
        build, manifest, chunks, examples, dense, bm25, sentences, sentence_dense, english
    )


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if line.strip()]


def write_build(
    index_dir: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    examples: list[YamlExample],
    vectors: np.ndarray,
    bm25_tokens: list[list[str]],
    sentences: list[SentenceRecord],
    sentence_vectors: np.ndarray,
    english: EnglishToChinese | None = None,
    notes: dict[str, str] | None = None,
) -> Path:
    """Write a complete build folder (not yet published). Returns its path. `notes` maps
    each note's sha256 to its text."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    try:
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as out:
            for chunk in chunks:
                out.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
        with (tmp / "yaml.jsonl").open("w", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
        with (tmp / "sentences.jsonl").open("w", encoding="utf-8") as out:
            for sentence in sentences:
                out.write(json.dumps(sentence.to_json(), ensure_ascii=False) + "\n")
        for name, matrix in (("dense", vectors), ("sentences", sentence_vectors)):
            flat = faiss.IndexFlatIP(manifest.dimension)
            if len(matrix):
                flat.add(np.ascontiguousarray(matrix, dtype=np.float32))
            faiss.write_index(flat, str(tmp / f"{name}.faiss"))
        bm25 = bm25s.BM25()
        # bm25s cannot index an empty corpus; one empty document keeps the shape valid.
        bm25.index(bm25_tokens or [[""]], show_progress=False)
        bm25.save(str(tmp / "bm25"))
        (tmp / NOTES).mkdir()
        for sha, text in (notes or {}).items():
            (tmp / NOTES / f"{sha}.txt").write_text(text, encoding="utf-8")
        if english is not None:
            (tmp / "english.json").write_text(
                json.dumps(english.to_json(), ensure_ascii=False), encoding="utf-8"
            )
        # The manifest goes last: a folder without one is never a complete build.
        (tmp / "manifest.json").write_text(
            json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        final = builds / build_id
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def publish(index_dir: Path, build: Path) -> None:
    """Atomically point `current` at the build, then drop old builds."""
    link = index_dir / CURRENT
    tmp_link = index_dir / f".{CURRENT}.{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(Path(BUILDS) / build.name)
    os.replace(tmp_link, link)
    _prune(index_dir, keep=build)


def _prune(index_dir: Path, keep: Path) -> None:
    builds = sorted(
        (p for p in (index_dir / BUILDS).iterdir() if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    finished = [p for p in builds if not p.name.startswith(".tmp-")]
    stale = [p for p in finished if p != keep][: max(0, len(finished) - KEEP_BUILDS)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
