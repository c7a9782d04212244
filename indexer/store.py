"""The index on disk: one folder per build, published by swapping a `current` symlink.

    <index_dir>/current -> builds/<build id>/
        manifest.json   model, dimension, per-file hashes, versions, build time
        chunks.jsonl    Chunk records, row i is FAISS id i and BM25 document i, read
        chunk_offsets.npy, yaml_owner.npy
                        through their byte offsets (indexer.chunk_table.ChunkTable)
        yaml.jsonl      YamlExample records (Chunk.yaml_ids index into this)
        commands.jsonl  CommandExample records, shell blocks (Chunk.command_ids index into
                        this)
        sentence_rows.npy, sentence_text.bin, sentence_text_offsets.npy
                        the sentences (indexer.sentences.SentenceTable), read on demand;
                        sentence i is row i of sentences.npy
        dense.faiss     chunk vectors (L2-normalised): exact IndexFlatIP up to
                        EXACT_MAX_CHUNKS, HNSW above (manifest.dense_index says which)
        sentences.npy   sentence vectors (float32), memory-mapped: only the sentences of
                        candidate chunks are ever read
        terms.npy, terms_indptr.npy
                        each chunk's distinct keyword tokens as BM25 vocabulary ids (CSR),
                        so the service never re-tokenizes the corpus
        bm25/           bm25s index over jieba tokens (memory-mapped when served)
        names.json      which of the names asked for at build time (the glossary's) occur
                        in the notes, so the service never scans the corpus text
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bm25s
import faiss
import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.chunk_table import ChunkTable, ChunkTableError
from indexer.sentences import SentenceRecord, SentenceTable
from indexer.terms import ChunkTerms, write_terms
from indexer.types import Chunk, CommandExample, YamlExample

# 3: paths relative to the corpus root, note texts inside the build; 4: commands.jsonl (an
# older build has no command examples, so it is rebuilt rather than served without them);
# 5: sentences.npy instead of sentences.faiss, sentence table instead of sentences.jsonl,
# terms*.npy, names.json, HNSW above a size; 6: chunk_offsets.npy and yaml_owner.npy, so
# chunks are read on demand
FORMAT_VERSION = 6
# Up to this many chunks an exact search costs under ~2 ms on one core; above it HNSW
# (graph search, recall@10 reported by the benchmark) keeps the search flat as notes grow.
EXACT_MAX_CHUNKS = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # recall@10 0.88 at 96 on the benchmark's 100k chunks
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
    dense_index: str = "flat"  # "flat" (exact) or "hnsw", see EXACT_MAX_CHUNKS
    # What else decided the chunks (indexer.build.pipeline_fingerprint): a rebuild with
    # the same reuses unchanged notes without parsing them again.
    pipeline: str = ""

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
    chunks: ChunkTable
    yaml: list[YamlExample]
    dense: faiss.Index
    bm25: bm25s.BM25
    sentences: SentenceTable
    sentence_matrix: np.ndarray  # memory-mapped, row i is sentence i
    terms: ChunkTerms
    english: EnglishToChinese | None = None  # None: built before english.json existed
    commands: list[CommandExample] = field(default_factory=list)
    # Names (lowercased) asked about at build time -> whether the notes contain them.
    names: dict[str, bool] = field(default_factory=dict)

    def vectors(self) -> np.ndarray:
        if self.dense.ntotal == 0:
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        return np.asarray(self.dense.reconstruct_n(0, self.dense.ntotal), dtype=np.float32)

    def sentence_vectors(self) -> np.ndarray:
        return self.sentence_matrix

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
        except ChunkTableError as exc:
            raise IndexCorruptError(build, exc.part, str(exc)[:300]) from exc
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
    chunks = part(ChunkTable.FILE, lambda p: ChunkTable(build))
    check(len(chunks) == manifest.chunk_count, ChunkTable.FILE,
          f"{len(chunks)} 个片段，清单记录 {manifest.chunk_count} 个")
    examples = part(
        "yaml.jsonl", lambda p: [YamlExample.from_json(json.loads(x)) for x in _lines(p)]
    )
    check(len(examples) == manifest.yaml_count, "yaml.jsonl",
          f"{len(examples)} 个 YAML 示例，清单记录 {manifest.yaml_count} 个")
    commands = part(
        "commands.jsonl",
        lambda p: [CommandExample.from_json(json.loads(x)) for x in _lines(p)],
    )
    check(len(commands) == manifest.command_count, "commands.jsonl",
          f"{len(commands)} 个命令示例，清单记录 {manifest.command_count} 个")
    wrong = chunks.check_references(len(examples), len(commands))
    check(wrong is None, wrong or "", f"片段引用了不存在的示例（{wrong}）")
    dense = part("dense.faiss", _read_dense)
    check(dense.ntotal == len(chunks) and dense.d == manifest.dimension, "dense.faiss",
          f"{dense.ntotal} 个 {dense.d} 维向量，应为 {len(chunks)} 个 {manifest.dimension} 维")
    bm25 = part("bm25", lambda p: bm25s.BM25.load(str(p), mmap=True, show_progress=False))
    docs = getattr(bm25, "scores", {}).get("num_docs")
    check(docs is None or docs == max(1, len(chunks)), "bm25",
          f"BM25 有 {docs} 篇文档，应为 {len(chunks)} 篇")
    terms = part("terms.npy", lambda p: ChunkTerms(build, bm25.vocab_dict))
    check(len(terms) == len(chunks) and terms.valid(len(bm25.vocab_dict)), "terms.npy",
          f"{len(terms)} 个片段的词表，应为 {len(chunks)} 个")
    sentences = part(SentenceTable.ROWS, lambda p: SentenceTable(build))
    check(sentences.valid(len(chunks)), SentenceTable.ROWS, "句子表与片段或原文不符")
    sentence_matrix = part("sentences.npy", lambda p: np.load(p, mmap_mode="r"))
    check(sentence_matrix.shape == (len(sentences), manifest.dimension)
          and sentence_matrix.dtype == np.float32, "sentences.npy",
          f"{sentence_matrix.shape} 个向量，应为 {len(sentences)} 个 {manifest.dimension} 维")
    english_file = build / "english.json"
    english = (
        part("english.json",
             lambda p: EnglishToChinese.from_json(json.loads(p.read_text("utf-8"))))
        if english_file.exists()
        else None
    )
    names = part("names.json", lambda p: dict(json.loads(p.read_text("utf-8"))))
    for source, entry in manifest.files.items():
        check((build / NOTES / f"{entry.sha256}.txt").is_file(), f"{NOTES}/{entry.sha256}.txt",
              f"缺少笔记 {source} 的原文")
    return StoredIndex(
        build, manifest, chunks, examples, dense, bm25, sentences, sentence_matrix, terms,
        english, commands, names,
    )


def _read_dense(path: Path) -> faiss.Index:
    index = faiss.read_index(str(path))
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = HNSW_EF_SEARCH
    return index


def dense_index(vectors: np.ndarray, dimension: int) -> tuple[faiss.Index, str]:
    """The chunk-vector index for this many chunks: exact up to EXACT_MAX_CHUNKS."""
    if len(vectors) <= EXACT_MAX_CHUNKS:
        index: faiss.Index = faiss.IndexFlatIP(dimension)
        kind = "flat"
    else:
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        kind = "hnsw"
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def names_found(names: Iterable[str], texts: Iterable[str]) -> dict[str, bool]:
    """Which names (compared lowercased) occur in any of the texts."""
    lowered = [t.lower() for t in texts]
    return {n: any(n in t for t in lowered) for n in sorted({n.lower() for n in names})}


@dataclass(frozen=True)
class PreviousVectors:
    """What a rebuild can reuse from the build being replaced: each embedded text with its
    vector, whatever that build's format version (a format change must not cost a full
    re-embedding; hours on a big corpus)."""

    dimension: int
    files: frozenset[str]
    texts: list[str]
    vectors: np.ndarray


def previous_vectors(index_dir: Path, model: str) -> PreviousVectors | None:
    """The current build's texts and vectors when it was embedded by `model`; None when
    there is none or it cannot be read (then everything is embedded afresh)."""
    build = current_build(index_dir)
    if build is None:
        return None
    try:
        manifest = json.loads((build / "manifest.json").read_text("utf-8"))
        if manifest.get("model") != model:
            return None
        dimension = int(manifest["dimension"])
        chunks = [Chunk.from_json(json.loads(x)) for x in _lines(build / "chunks.jsonl")]
        sentences: Sequence[SentenceRecord] = (
            [SentenceRecord.from_json(json.loads(x)) for x in _lines(build / "sentences.jsonl")]
            if (build / "sentences.jsonl").exists()  # format 4 and older
            else SentenceTable(build)
        )
        dense = faiss.read_index(str(build / "dense.faiss"))
        chunk_vectors = (
            dense.reconstruct_n(0, dense.ntotal) if dense.ntotal
            else np.zeros((0, dimension), np.float32)
        )
        if (build / "sentences.npy").exists():
            sentence_vectors = np.load(build / "sentences.npy")
        else:  # format 4 and older kept them in a FAISS index
            flat = faiss.read_index(str(build / "sentences.faiss"))
            sentence_vectors = (
                flat.reconstruct_n(0, flat.ntotal) if flat.ntotal
                else np.zeros((0, dimension), np.float32)
            )
        if len(chunk_vectors) != len(chunks) or len(sentence_vectors) != len(sentences):
            return None
        texts = [c.embedding_text() for c in chunks] + [
            s.embedding_text(chunks[s.chunk]) for s in sentences
        ]
        vectors = np.vstack([chunk_vectors, sentence_vectors]).astype(np.float32, copy=False)
    except Exception:  # whatever a damaged or foreign build makes its readers raise
        return None
    return PreviousVectors(dimension, frozenset(manifest.get("files", {})), texts, vectors)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if line.strip()]


def write_build(
    index_dir: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    examples: list[YamlExample],
    vectors: np.ndarray,
    bm25_tokens: list[list[str]],
    sentences: Sequence[SentenceRecord],
    sentence_vectors: np.ndarray,
    english: EnglishToChinese | None = None,
    notes: dict[str, str] | None = None,
    commands: list[CommandExample] | None = None,
    names: dict[str, bool] | None = None,
) -> Path:
    """Write a complete build folder (not yet published). Returns its path. `notes` maps
    each note's sha256 to its text; `names` is what `names_found` said of the notes."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    try:
        ChunkTable.write(tmp, chunks, len(examples))
        with (tmp / "yaml.jsonl").open("w", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
        with (tmp / "commands.jsonl").open("w", encoding="utf-8") as out:
            for command in commands or ():
                out.write(json.dumps(command.to_json(), ensure_ascii=False) + "\n")
        SentenceTable.write(tmp, sentences)
        dense, manifest.dense_index = dense_index(vectors, manifest.dimension)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        np.save(
            tmp / "sentences.npy",
            np.ascontiguousarray(sentence_vectors, dtype=np.float32).reshape(
                len(sentences), manifest.dimension
            ),
        )
        bm25 = bm25s.BM25()
        # bm25s cannot index an empty corpus; one empty document keeps the shape valid.
        bm25.index(bm25_tokens or [[""]], show_progress=False)
        bm25.save(str(tmp / "bm25"))
        write_terms(tmp, bm25_tokens, bm25.vocab_dict)
        (tmp / "names.json").write_text(
            json.dumps(names or {}, ensure_ascii=False), encoding="utf-8"
        )
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
