"""The index on disk: one folder per build, published by swapping a `current` symlink.

    <index_dir>/current -> builds/<build id>/
        manifest.json   model, dimension, per-file hashes, versions, build time
        chunks.jsonl    Chunk records, row i is FAISS id i and BM25 document i
        yaml.jsonl      YamlExample records (Chunk.yaml_ids index into this)
        commands.jsonl  CommandExample records, shell blocks (Chunk.command_ids index into
                        this)
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bm25s
import faiss
import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.sentences import SentenceRecord
from indexer.types import Chunk, CommandExample, YamlExample

# 3: paths relative to the corpus root, note texts inside the build; 4: commands.jsonl (an
# older build has no command examples, so it is rebuilt rather than served without them)
FORMAT_VERSION = 4
CURRENT = "current"
BUILDS = "builds"
NOTES = "notes"
KEEP_BUILDS = 2
STALE_TMP_S = 600  # a killed build's leftovers are removed by a build this much later

_T = TypeVar("_T")


class IndexNotFoundError(FileNotFoundError):
    pass


class IndexCorruptError(IndexNotFoundError):
    """A build with a missing, truncated or corrupted file. The message names the file and
    says how to rebuild; it is an IndexNotFoundError, so everything that reports a missing
    index (the CLI, /readyz, the reload watcher) reports this one too."""

    def __init__(self, build: Path, part: str, detail: str):
        self.build, self.part = build, part
        index_dir = build.parent.parent
        super().__init__(
            f"索引文件 {build / part} 已损坏或不完整（{detail}）。"
            f"请重新构建：notesqa index --out {index_dir}"
        )


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
    # Defaulted so an older manifest still loads and is refused by its format version.
    command_count: int = 0
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
    commands: list[CommandExample] = field(default_factory=list)

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
    """Load a build, checking that its parts are complete and agree with each other (a
    truncated chunks.jsonl would otherwise shift every citation). Raises IndexCorruptError
    naming the first broken file."""

    def part(name: str, read: Callable[[Path], _T]) -> _T:
        try:
            return read(build / name)
        except IndexNotFoundError:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # whatever a damaged file makes its reader raise
            detail = f"{type(exc).__name__}: {exc}".strip()
            raise IndexCorruptError(build, name, detail[:300]) from exc

    def check(ok: bool, name: str, detail: str) -> None:
        if not ok:
            raise IndexCorruptError(build, name, detail)

    if not build.is_dir():
        raise IndexNotFoundError(f"{build} 不存在（先运行 notesqa index）")
    manifest = part(
        "manifest.json",
        lambda p: Manifest.from_json(json.loads(p.read_text("utf-8"))),
    )
    if manifest.format_version != FORMAT_VERSION:
        raise IndexNotFoundError(
            f"{build} 的索引格式版本 {manifest.format_version} 与当前版本 {FORMAT_VERSION} 不符"
        )
    chunks = part("chunks.jsonl", lambda p: [Chunk.from_json(json.loads(x)) for x in _lines(p)])
    check(len(chunks) == manifest.chunk_count, "chunks.jsonl",
          f"{len(chunks)} 个片段，清单记录 {manifest.chunk_count} 个")
    examples = part(
        "yaml.jsonl", lambda p: [YamlExample.from_json(json.loads(x)) for x in _lines(p)]
    )
    check(len(examples) == manifest.yaml_count, "yaml.jsonl",
          f"{len(examples)} 个 YAML 示例，清单记录 {manifest.yaml_count} 个")
    check(all(0 <= i < len(examples) for c in chunks for i in c.yaml_ids), "yaml.jsonl",
          "片段引用了不存在的 YAML 示例")
    commands = part(
        "commands.jsonl",
        lambda p: [CommandExample.from_json(json.loads(x)) for x in _lines(p)],
    )
    check(len(commands) == manifest.command_count, "commands.jsonl",
          f"{len(commands)} 个命令示例，清单记录 {manifest.command_count} 个")
    check(all(0 <= i < len(commands) for c in chunks for i in c.command_ids), "commands.jsonl",
          "片段引用了不存在的命令示例")
    dense = part("dense.faiss", lambda p: faiss.read_index(str(p)))
    check(dense.ntotal == len(chunks) and dense.d == manifest.dimension, "dense.faiss",
          f"{dense.ntotal} 个 {dense.d} 维向量，应为 {len(chunks)} 个 {manifest.dimension} 维")
    bm25 = part("bm25", lambda p: bm25s.BM25.load(str(p)))
    docs = getattr(bm25, "scores", {}).get("num_docs")
    check(docs is None or docs == max(1, len(chunks)), "bm25",
          f"BM25 有 {docs} 篇文档，应为 {len(chunks)} 篇")
    sentences = part(
        "sentences.jsonl",
        lambda p: [SentenceRecord.from_json(json.loads(x)) for x in _lines(p)],
    )
    check(all(0 <= s.chunk < len(chunks) for s in sentences), "sentences.jsonl",
          "句子引用了不存在的片段")
    sentence_dense = part("sentences.faiss", lambda p: faiss.read_index(str(p)))
    check(sentence_dense.ntotal == len(sentences) and sentence_dense.d == manifest.dimension,
          "sentences.faiss",
          f"{sentence_dense.ntotal} 个向量，应为 {len(sentences)} 个")
    english_file = build / "english.json"
    english = (
        part("english.json",
             lambda p: EnglishToChinese.from_json(json.loads(p.read_text("utf-8"))))
        if english_file.exists()
        else None
    )
    for source, entry in manifest.files.items():
        check((build / NOTES / f"{entry.sha256}.txt").is_file(), f"{NOTES}/{entry.sha256}.txt",
              f"缺少笔记 {source} 的原文")
    return StoredIndex(
        build, manifest, chunks, examples, dense, bm25, sentences, sentence_dense, english,
        commands,
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
    commands: list[CommandExample] | None = None,
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
        with (tmp / "commands.jsonl").open("w", encoding="utf-8") as out:
            for command in commands or ():
                out.write(json.dumps(command.to_json(), ensure_ascii=False) + "\n")
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
    # What a killed build left behind (its process is gone, and the folder untouched for
    # a while: the index folder may be shared with builders on other hosts): a half-written
    # folder, a link that was never swapped in. A build still running is kept.
    now = time.time()
    stale += [
        p for p in builds
        if p.name.startswith(".tmp-") and not _writer_alive(p.name)
        and now - _mtime(p, now) > STALE_TMP_S
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    for link in index_dir.glob(f".{CURRENT}.*"):
        try:
            age = now - link.lstat().st_mtime
        except OSError:
            continue
        if link.is_symlink() and not _alive(link.name.rsplit(".", 1)[-1]) \
                and age > STALE_TMP_S:
            link.unlink(missing_ok=True)


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # renamed or removed meanwhile by its builder
        return default


def _writer_alive(tmp_name: str) -> bool:
    # .tmp-<time>-<pid>-<ns>, see write_build
    parts = tmp_name.split("-")
    return _alive(parts[2]) if len(parts) >= 4 else True


def _alive(pid_text: str) -> bool:
    if not pid_text.isdigit():
        return True  # not ours to judge
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
