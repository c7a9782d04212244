"""Publish a built index to Milvus, incrementally: only rows that changed are written.

`notesqa index` with `NOTESQA_MILVUS_URI` set builds as usual into its working folder
(vectors already in Milvus are reused, see `MilvusVectors`), then `publish_to_milvus`
brings the generation not being served to the new content (upsert what changed, delete
what went), loads it, and moves the alias. See `indexer.milvus_store` for the layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from indexer.build import embed_key
from indexer.milvus_store import (
    DUMMY_DIM,
    PARTS,
    QUERY_BATCH,
    TEXT_MAX,
    Generation,
    MilvusIndexError,
    collection,
    connect,
    create_collections,
    decode_meta,
    drop_generation,
    encode_meta,
    field_in,
    key_of,
    other,
    part_rows,
    parts_of,
    read_parts,
    read_served,
    sentence_key,
)
from indexer.settings import Settings
from indexer.store import StoredIndex, load_build, load_index, names_found
from indexer.types import Chunk

WRITE_BATCH = 256  # rows per upsert (a few MB per request)


@dataclass
class SyncReport:
    generation: Generation
    build: str
    written: dict[str, int] = field(default_factory=dict)  # rows upserted per collection
    deleted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Part:
    """One collection's wanted rows: each key with its digest (empty where the key says it
    all), and how to make a row. Rows are made only for the keys that are written, so a
    rebuild that changes little holds little in memory."""

    digests: dict[int, str]
    make: Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class _Rows:
    """A built index as Milvus rows, keyed by content."""

    parts: dict[str, _Part]  # chunks, sentences, examples, notes
    meta: dict[str, Any]


def publish_to_milvus(
    index: StoredIndex,
    settings: Settings,
    client: MilvusClient,
    *,
    names: Collection[str] = (),
    fail_after: Callable[[str], None] | None = None,
) -> SyncReport:
    """Write `index` into the generation not being served and switch the alias to it.
    `names` (the glossary's object names) are looked up in the notes where the build did
    not (a replica cannot scan the notes). `fail_after(part)` is called after each
    collection is written (tests interrupt builds with it)."""
    started = time.perf_counter()
    base = settings.milvus_collection
    served = read_served(client, base)
    target: Generation = other(served.generation) if served else "a"
    rows = rows_of(index, published_at=time.time(), names=names)
    if served is not None:
        # Replicas still reading the retired generation move off it within one poll.
        wait = served.meta.get("published_at", 0) + settings.reload_poll_seconds + 1 - time.time()
        if wait > 0:
            time.sleep(min(wait, settings.reload_poll_seconds + 1))
    _prepare(client, base, target, index.manifest.dimension, index.manifest.model)
    report = SyncReport(target, rows.meta["build_id"])
    for part, wanted in rows.parts.items():
        name = collection(base, target, part)
        have = _existing(client, name, with_digest=part == "chunks")
        changed = [
            key for key, digest in wanted.digests.items()
            if key not in have or have[key] != digest
        ]
        gone = [key for key in have if key not in wanted.digests]
        for i in range(0, len(changed), WRITE_BATCH):
            client.upsert(name, [wanted.make(k) for k in changed[i : i + WRITE_BATCH]])
        for i in range(0, len(gone), QUERY_BATCH):
            client.delete(name, ids=gone[i : i + QUERY_BATCH])
        report.written[part], report.deleted[part] = len(changed), len(gone)
        if fail_after is not None:
            fail_after(part)
    meta_name = collection(base, target, "meta")
    old_meta = list(_existing(client, meta_name, with_digest=False))
    if old_meta:
        client.delete(meta_name, ids=old_meta)
    client.upsert(meta_name, part_rows("meta", encode_meta(rows.meta)))
    for part in PARTS:
        client.flush(collection(base, target, part))
        client.load_collection(collection(base, target, part))
    if fail_after is not None:
        fail_after("meta")
    # The switch: one alias operation, so every replica sees all of the old generation
    # or all of the new.
    if served is None:
        try:
            client.create_alias(meta_name, base)
        except Exception:  # it exists, naming a collection this layout does not know
            client.alter_alias(meta_name, base)
    else:
        client.alter_alias(meta_name, base)
    report.seconds = time.perf_counter() - started
    return report


def _prepare(
    client: MilvusClient, base: str, target: Generation, dimension: int, model: str
) -> None:
    """The target generation's collections, recreated when they hold another model's
    vectors (or an older layout)."""
    meta_name = collection(base, target, "meta")
    if client.has_collection(meta_name):
        try:
            client.load_collection(meta_name)
            text = read_parts(client, "meta", meta_name)
            meta = decode_meta(text) if text else {}
        except Exception:  # unreadable: start the generation afresh
            meta = {}
        if meta.get("model") != model or meta.get("dimension") != dimension or \
                meta.get("layout") != LAYOUT:
            drop_generation(client, base, target)
    create_collections(client, base, target, dimension)
    for part in PARTS:
        client.load_collection(collection(base, target, part))


LAYOUT = 2  # bumped when the rows' fields change (2: chunks.sentences)


def _existing(client: MilvusClient, name: str, with_digest: bool) -> dict[int, str]:
    fields = ["id", "digest"] if with_digest else ["id"]
    out: dict[int, str] = {}
    iterator = client.query_iterator(name, batch_size=4096, filter="id >= 0",
                                     output_fields=fields)
    try:
        while True:
            batch = iterator.next()
            if not batch:
                break
            for row in batch:
                out[int(row["id"])] = row.get("digest", "")
    finally:
        iterator.close()
    return out


def rows_of(index: StoredIndex, published_at: float, names: Collection[str] = ()) -> _Rows:
    """Every row of the Milvus layout for a built index."""
    manifest = index.manifest
    chunks = [index.chunks[row] for row in range(len(index.chunks))]
    # Keys from content: an example's from its own record, a chunk's from its record with
    # its examples' contents in place of their positions, an example's from its chunk.
    chunk_keys: list[int] = []
    example_keys: dict[tuple[str, int], int] = {}
    for chunk in chunks:
        content = chunk.to_json() | {
            "yaml_ids": [key_of("yaml", index.yaml[i].to_json()) for i in chunk.yaml_ids],
            "command_ids": [
                key_of("command", index.commands[i].to_json()) for i in chunk.command_ids
            ],
        }
        key = key_of("chunk", content)
        chunk_keys.append(key)
        for j, i in enumerate(chunk.yaml_ids):
            example_keys[("yaml", i)] = key_of("example", key, "yaml", j)
        for j, i in enumerate(chunk.command_ids):
            example_keys[("command", i)] = key_of("example", key, "command", j)

    lengths = [len(index.terms.tokens(row)) for row in range(len(chunks))]

    def chunk_fields(row: int) -> dict[str, Any]:
        chunk = chunks[row]
        record = chunk.to_json() | {
            "yaml_ids": [example_keys[("yaml", i)] for i in chunk.yaml_ids],
            "command_ids": [example_keys[("command", i)] for i in chunk.command_ids],
        }
        record_text = json.dumps(record, ensure_ascii=False)
        # Sorted: the table lists them by vocabulary id, which differs between builds.
        keywords = " ".join(sorted(index.terms.tokens(row)))
        _check_size(chunk, record_text, keywords)
        neighbours = ",".join(
            str(chunk_keys[other]) if _same_section(chunks, row, other) else ""
            for other in (row - 1, row + 1)
        )
        return {"source": chunk.source, "record": record_text, "keywords": keywords,
                "neighbours": neighbours, "vkey": embed_key(chunk.embedding_text()),
                "sentences": len(index.sentences.of_chunk(row))}

    def digest_of(fields: dict[str, Any]) -> str:
        return hashlib.blake2b(
            json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8"),
            digest_size=16,
        ).hexdigest()

    chunk_row = {key: row for row, key in enumerate(chunk_keys)}

    def make_chunk(key: int) -> dict[str, Any]:
        row = chunk_row[key]
        fields = chunk_fields(row)
        return {"id": key, "digest": digest_of(fields), **fields,
                "dense": index.dense.reconstruct(row).tolist()}

    chunk_part = _Part({key: digest_of(chunk_fields(row)) for key, row in chunk_row.items()},
                       make_chunk)

    sentence_index: dict[int, int] = {}
    for i, sentence in enumerate(index.sentences):
        # Keyed by position in its chunk: a reader derives the keys from the count.
        position = i - index.sentences.of_chunk(sentence.chunk).start
        sentence_index[sentence_key(chunk_keys[sentence.chunk], position)] = i
    matrix = index.sentence_vectors()

    def make_sentence(key: int) -> dict[str, Any]:
        i = sentence_index[key]
        sentence = index.sentences[i]
        chunk = chunks[sentence.chunk]
        return {
            "id": key, "chunk": chunk_keys[sentence.chunk], "source": chunk.source,
            "vkey": embed_key(sentence.embedding_text(chunk)), "line": sentence.line,
            "ord": sentence.order, "text": sentence.text[: TEXT_MAX // 4],
            "dense": np.asarray(matrix[i], dtype=np.float32).tolist(),
        }

    example_of = {key: (kind, i) for (kind, i), key in example_keys.items()}
    owner_of = {
        example_keys[(kind, i)]: chunk_keys[row]
        for row, chunk in enumerate(chunks)
        for kind, ids in (("yaml", chunk.yaml_ids), ("command", chunk.command_ids))
        for i in ids
    }

    def make_example(key: int) -> dict[str, Any]:
        kind, i = example_of[key]
        example = index.yaml[i] if kind == "yaml" else index.commands[i]
        text = json.dumps(example.to_json(), ensure_ascii=False)
        if len(text.encode("utf-8")) > TEXT_MAX:
            raise MilvusIndexError(
                f"{example.source} 第 {example.lines[0]} 行的代码块超过 Milvus 字段上限"
                f"（{TEXT_MAX} 字节），请拆分后重新索引"
            )
        return {"id": key, "type": kind, "owner": owner_of[key], "record": text,
                "kind": (getattr(example, "kind", None) or "").lower()[:256],
                "v": [0.0] * DUMMY_DIM}

    note_of: dict[int, tuple[str, str, int]] = {}  # key -> source, sha256, part
    for source, entry in manifest.files.items():
        for part in range(len(parts_of(index.note_text(source) or ""))):
            note_of[key_of("part", entry.sha256, part)] = (source, entry.sha256, part)

    def make_note(key: int) -> dict[str, Any]:
        source, sha, part = note_of[key]
        return part_rows(sha, index.note_text(source) or "")[part]

    terms = index.terms
    vocabulary = {word: terms.document_frequency(word) for word in index.bm25.vocab_dict}
    meta = {
        "layout": LAYOUT,
        "build_id": index.path.name,
        "published_at": published_at,
        "built_at": manifest.built_at,
        "model": manifest.model,
        "dimension": manifest.dimension,
        "files": {source: entry.sha256 for source, entry in manifest.files.items()},
        "chunk_count": manifest.chunk_count,
        "yaml_count": manifest.yaml_count,
        "command_count": manifest.command_count,
        "documents": len(chunks),
        "average_length": float(np.mean(lengths)) if lengths else 0.0,
        "vocabulary": vocabulary,
        "names": index.names | names_found(
            (n for n in names if n.lower() not in index.names),
            (" ".join(c.heading) + "\n" + c.text for c in chunks),
        ),
        "kinds": sorted({(e.kind or "").lower() for e in index.yaml}),
        "english": index.english.to_json() if index.english is not None else None,
    }
    parts = {
        "chunks": chunk_part,
        "sentences": _Part(dict.fromkeys(sentence_index, ""), make_sentence),
        "examples": _Part(dict.fromkeys(example_of, ""), make_example),
        "notes": _Part(dict.fromkeys(note_of, ""), make_note),
    }
    return _Rows(parts, meta)


def _same_section(chunks: Sequence[Chunk], row: int, other_row: int) -> bool:
    return (
        0 <= other_row < len(chunks)
        and chunks[other_row].source == chunks[row].source
        and chunks[other_row].heading == chunks[row].heading
    )


def _check_size(chunk: Chunk, record: str, keywords: str) -> None:
    if max(len(record.encode("utf-8")), len(keywords.encode("utf-8"))) > TEXT_MAX:
        raise MilvusIndexError(
            f"{chunk.source} 第 {chunk.lines[0]}-{chunk.lines[1]} 行的片段超过 Milvus 字段上限"
            f"（{TEXT_MAX} 字节），请拆分这一节后重新索引"
        )


class MilvusVectors:
    """Vectors already in Milvus, by the key of the text they embed: a build in a fresh
    working folder (a Kubernetes Job) re-embeds only what Milvus does not hold."""

    def __init__(self, client: MilvusClient, base: str):
        self.client = client
        self.base = base

    def __call__(self, model: str, keys: Sequence[str]) -> Mapping[str, np.ndarray]:
        served = read_served(self.client, self.base)
        if served is None or served.meta.get("model") != model or not keys:
            return {}
        found: dict[str, np.ndarray] = {}
        for part in ("chunks", "sentences"):
            name = collection(self.base, served.generation, part)
            wanted = [k for k in keys if k not in found]
            for condition in field_in("vkey", wanted):
                for row in self.client.query(name, filter=condition,
                                             output_fields=["vkey", "dense"]):
                    found[row["vkey"]] = np.asarray(row["dense"], dtype=np.float32)
        return found


class MilvusPublisher:
    """What `notesqa index` does with Milvus: vectors for the build, then the publish."""

    def __init__(self, settings: Settings, names: Collection[str] = ()):
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # errors reported by us
        self.settings = settings
        self.names = names
        self.client = connect(settings)
        self.vectors = MilvusVectors(self.client, settings.milvus_collection)

    def publish_current(self) -> SyncReport:
        """Publish the build the working folder's `current` names."""
        return publish_to_milvus(
            load_index(self.settings.index_dir), self.settings, self.client, names=self.names
        )

    def publish(self, build: Path) -> list[tuple[str, str]]:
        """Publish a build folder; the report as (label, value) rows for the CLI."""
        try:
            report = publish_to_milvus(
                load_build(build), self.settings, self.client, names=self.names
            )
        except MilvusIndexError:
            raise
        except Exception as exc:  # grpc and pymilvus errors
            raise MilvusIndexError(f"写入 Milvus 失败：{exc}") from exc
        names = {"chunks": "片段", "sentences": "句子", "examples": "示例", "notes": "笔记"}
        rows = [("Milvus", f"{self.settings.milvus_uri}，{report.generation} 代已启用")]
        rows += [
            (f"Milvus {label}",
             f"写入 {report.written.get(part, 0)}，删除 {report.deleted.get(part, 0)}")
            for part, label in names.items()
        ]
        rows.append(("Milvus 耗时", f"{report.seconds:.1f} 秒"))
        return rows
