"""The Milvus search backend: chunks, sentences and examples stay in Milvus.

The process keeps corpus-level data only (vocabulary with document frequencies, average
chunk length, the English table, which names the notes mention) and fetches per-chunk
data for the candidates of each question, keeping the most recent in bounded caches.

Per question, in Milvus: one BM25 search (candidates proposed by Milvus's jieba analyzer,
scored here with bm25s's formula on corpus-level statistics, so fusion sees the same scale
as the embedded backend whatever Milvus's own BM25 values are), one HNSW search over chunk
vectors, one over sentence vectors (a chunk is as close as its closest sentence, as in the
embedded index), one query for the chunks found only through a sentence, one for the
sentences of the chunks the answer is composed from, and the YAML examples asked for.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from cachetools import LRUCache
from pymilvus import MilvusClient

from indexer.bilingual import EnglishToChinese
from indexer.milvus_store import (
    HNSW_EF_SEARCH,
    PARTS,
    Generation,
    MilvusIndexError,
    Served,
    collection,
    connect,
    ids_in,
    read_parts,
    read_served,
    sentence_key,
    serving_generation,
)
from indexer.sentences import SentenceRecord
from indexer.settings import Settings
from indexer.types import Chunk, CommandExample, YamlExample
from service.search_backend import (
    BackendUnavailableError,
    IndexInfo,
    ScoredSentences,
    best,
    bm25_idf,
    bm25_score,
)

# Milvus proposes this many times the candidates the service keeps: its analyzer and
# scores are not the service's, so the best by the service's BM25 may rank lower there.
KEYWORD_OVERFETCH = 2
CHUNK_CACHE = 4096
SENTENCE_CACHE = 1024  # chunks whose sentences (with vectors) are kept
EXAMPLE_CACHE = 2048
KIND_LIMIT = 256  # examples of one kind considered for a request

CHUNK_FIELDS = ["id", "record", "keywords", "neighbours", "sentences"]

_V = TypeVar("_V")


@dataclass(frozen=True)
class ChunkRow:
    chunk: Chunk
    counts: Counter[str]  # keyword tokens with their counts
    length: int
    neighbours: tuple[int, ...]
    sentences: int


@dataclass(frozen=True)
class ExampleRow:
    type: str  # "yaml" or "command"
    example: YamlExample | CommandExample
    owner: int


class FetchingCache(Generic[_V]):
    """Values by int key: the most recent in an LRU, the rest fetched in one call."""

    def __init__(self, fetch: Callable[[list[int]], dict[int, _V]], size: int):
        self._fetch = fetch
        self._cache: LRUCache[int, _V] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def put(self, key: int, value: _V) -> None:
        with self._lock:
            self._cache[key] = value

    def many(self, keys: Iterable[int]) -> dict[int, _V]:
        keys = list(dict.fromkeys(keys))
        found: dict[int, _V] = {}
        with self._lock:
            for key in keys:
                value = self._cache.get(key)
                if value is not None:
                    found[key] = value
        missing = [key for key in keys if key not in found]
        if missing:
            fetched = self._fetch(missing)
            with self._lock:
                for key, value in fetched.items():
                    self._cache[key] = value
            found.update(fetched)
        return found

    def __getitem__(self, key: int) -> _V:
        found = self.many([key])
        if key not in found:
            raise KeyError(key)
        return found[key]


class _Field(Generic[_V]):
    """A view of a cache's values through a function (`chunks` shows ChunkRow.chunk)."""

    def __init__(self, cache: FetchingCache[Any], get: Callable[[Any], _V]):
        self._cache, self._get = cache, get

    def __getitem__(self, key: int) -> _V:
        return self._get(self._cache[key])


class _ExamplesByKind(Mapping[str, Sequence[int]]):
    """Kind -> example keys in corpus order, asked of Milvus per kind and remembered."""

    def __init__(self, backend: MilvusBackend, kinds: Sequence[str]):
        self._backend = backend
        self._kinds = frozenset(kinds)
        self._found: LRUCache[str, tuple[int, ...]] = LRUCache(maxsize=256)
        self._lock = threading.Lock()

    def __getitem__(self, kind: str) -> Sequence[int]:
        if kind not in self._kinds:
            raise KeyError(kind)
        with self._lock:
            found = self._found.get(kind)
        if found is None:
            found = self._backend.examples_of_kind(kind)
            with self._lock:
                self._found[kind] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._kinds))

    def __len__(self) -> int:
        return len(self._kinds)


class _Guarded:
    """The client, with every failed call raised as BackendUnavailableError: a Milvus
    outage is a 503 for the question, not a 500."""

    def __init__(self, client: MilvusClient):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:  # grpc and pymilvus errors alike
                raise BackendUnavailableError(f"搜索后端 Milvus 暂时无法访问（{exc}）") from exc

        return call


class MilvusBackend:
    """Search and per-chunk data in Milvus; corpus-level data here (see the module)."""

    def __init__(self, client: MilvusClient, base: str, served: Served):
        self.client: Any = _Guarded(client)
        meta = served.meta
        self._name = {part: collection(base, served.generation, part) for part in PARTS}
        for name in self._name.values():
            # A collection is searchable once loaded; loading a loaded one is a no-op.
            self.client.load_collection(name)
        self.info = IndexInfo(
            name=served.build, backend="milvus", model=meta["model"],
            files=len(meta["files"]), chunks=int(meta["chunk_count"]),
            yaml_examples=int(meta["yaml_count"]), built_at=meta["built_at"],
        )
        self.vocabulary: Mapping[str, int] = meta["vocabulary"]  # word -> document frequency
        self._documents = int(meta["documents"])
        self._average_length = float(meta["average_length"])
        self.english = (
            EnglishToChinese.from_json(meta["english"]) if meta.get("english") else None
        )
        self._names: dict[str, bool] = meta["names"]
        self._files: dict[str, str] = meta["files"]
        self._rows = FetchingCache(self._fetch_chunks, CHUNK_CACHE)
        self._sentences: FetchingCache[tuple[list[SentenceRecord], np.ndarray]] = (
            FetchingCache(self._fetch_sentences, SENTENCE_CACHE)
        )
        self._examples = FetchingCache(self._fetch_examples, EXAMPLE_CACHE)
        self.chunks: _Field[Chunk] = _Field(self._rows, lambda row: row.chunk)
        self.yaml: _Field[YamlExample] = _Field(self._examples, lambda e: e.example)
        self.commands: _Field[CommandExample] = _Field(self._examples, lambda e: e.example)
        self.example_chunk: _Field[int] = _Field(self._examples, lambda e: e.owner)
        self.examples_by_kind = _ExamplesByKind(self, meta.get("kinds", []))

    def idf(self, token: str) -> float:
        return bm25_idf(self._documents, int(self.vocabulary.get(token, 0)))

    def keyword(self, tokens: Sequence[str], k: int) -> dict[int, float]:
        hits = self.client.search(
            self._name["chunks"], data=[" ".join(tokens)], anns_field="sparse",
            limit=k * KEYWORD_OVERFETCH, output_fields=CHUNK_FIELDS,
            search_params={"metric_type": "BM25"},
        )[0]
        idf = {token: self.idf(token) for token in tokens}
        scores: dict[int, float] = {}
        for hit in hits:
            row = _chunk_row(hit["entity"])
            self._rows.put(int(hit["id"]), row)
            score = bm25_score(tokens, row.counts, row.length, self._average_length, idf)
            if score > 0:
                scores[int(hit["id"])] = score
        return best(scores, k)

    def dense(self, vector: np.ndarray, k: int, sentence_pool: int) -> dict[int, float]:
        query = [vector[0].astype(np.float32).tolist()]
        params = {"metric_type": "COSINE", "params": {"ef": max(HNSW_EF_SEARCH, k)}}
        scores: dict[int, float] = {}
        for hit in self.client.search(
            self._name["chunks"], data=query, anns_field="dense", limit=k,
            output_fields=CHUNK_FIELDS, search_params=params,
        )[0]:
            self._rows.put(int(hit["id"]), _chunk_row(hit["entity"]))
            scores[int(hit["id"])] = float(hit["distance"])
        params = {"metric_type": "COSINE",
                  "params": {"ef": max(HNSW_EF_SEARCH, k * sentence_pool)}}
        for hit in self.client.search(
            self._name["sentences"], data=query, anns_field="dense", limit=k * sentence_pool,
            output_fields=["chunk"], search_params=params,
        )[0]:
            chunk = int(hit["entity"]["chunk"])
            scores[chunk] = max(scores.get(chunk, -1.0), float(hit["distance"]))
        return best(scores, k)

    def prefetch(self, keys: Iterable[int]) -> None:
        self._rows.many(keys)

    def sentences(
        self, keys: Sequence[int], vector: np.ndarray | None
    ) -> dict[int, ScoredSentences]:
        found = self._sentences.many(keys)
        out: dict[int, ScoredSentences] = {}
        for key in keys:
            records, matrix = found.get(key, ([], np.zeros((0, 1), np.float32)))
            if vector is None or not records:
                out[key] = [(r, None) for r in records]
            else:
                sims = matrix @ vector[0]
                out[key] = [(r, float(s)) for r, s in zip(records, sims.tolist(), strict=True)]
        return out

    def terms(self, keys: Sequence[int]) -> list[frozenset[str]]:
        rows = self._rows.many(keys)
        return [frozenset(rows[key].counts) for key in keys]

    def neighbours(self, key: int) -> list[int]:
        return list(self._rows[key].neighbours)

    def mentions(self, name: str) -> bool:
        # A name the build did not look up (the glossary changed since) counts as
        # mentioned: the notes cannot be scanned from here, and declining on a guess is
        # worse than answering.
        return self._names.get(name, True)

    def sentences_between(self, source: str, first: int, last: int) -> list[SentenceRecord]:
        rows = self.client.query(
            self._name["sentences"],
            filter=f"source == {json.dumps(source, ensure_ascii=False)} "
            f"and line >= {int(first)} and line <= {int(last)}",
            output_fields=["chunk", "ord", "line", "text"], limit=16_384,
        )
        rows.sort(key=lambda r: (r["line"], r["ord"]))
        return [SentenceRecord(int(r["chunk"]), int(r["ord"]), int(r["line"]), r["text"])
                for r in rows]

    def note_text(self, source: str) -> str | None:
        sha = self._files.get(source)
        if sha is None:
            return None
        return read_parts(self.client, sha, self._name["notes"])

    def examples_of_kind(self, kind: str) -> tuple[int, ...]:
        rows = self.client.query(
            self._name["examples"],
            filter=f'type == "yaml" and kind == {json.dumps(kind, ensure_ascii=False)}',
            output_fields=["id", "type", "owner", "record"], limit=KIND_LIMIT,
        )
        examples = {int(r["id"]): _example_row(r) for r in rows}
        for key, example in examples.items():
            self._examples.put(key, example)
        # Corpus order, as the embedded index lists them.
        return tuple(sorted(examples, key=lambda key: (
            examples[key].example.source, examples[key].example.lines,
        )))

    def _fetch_chunks(self, keys: list[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        for condition in ids_in(keys):
            for row in self.client.query(self._name["chunks"], filter=condition,
                                         output_fields=CHUNK_FIELDS):
                out[int(row["id"])] = _chunk_row(row)
        return out

    def _fetch_sentences(
        self, keys: list[int]
    ) -> dict[int, tuple[list[SentenceRecord], np.ndarray]]:
        # By primary key: (chunk key, position) for each of the chunk's sentences.
        counts = self._rows.many(keys)
        owner = {
            sentence_key(key, order): key
            for key in keys if key in counts for order in range(counts[key].sentences)
        }
        grouped: dict[int, list[dict[str, Any]]] = {key: [] for key in keys}
        for condition in ids_in(list(owner)):
            for row in self.client.query(
                self._name["sentences"], filter=condition,
                output_fields=["id", "ord", "line", "text", "dense"],
            ):
                grouped[owner[int(row["id"])]].append(row)
        out = {}
        for key, rows in grouped.items():
            rows.sort(key=lambda r: r["ord"])
            records = [SentenceRecord(key, int(r["ord"]), int(r["line"]), r["text"]) for r in rows]
            matrix = (
                np.asarray([r["dense"] for r in rows], dtype=np.float32) if rows
                else np.zeros((0, 1), np.float32)
            )
            out[key] = (records, matrix)
        return out

    def _fetch_examples(self, keys: list[int]) -> dict[int, ExampleRow]:
        out: dict[int, ExampleRow] = {}
        for condition in ids_in(keys):
            for row in self.client.query(self._name["examples"], filter=condition,
                                         output_fields=["id", "type", "owner", "record"]):
                out[int(row["id"])] = _example_row(row)
        return out


def _chunk_row(entity: Mapping[str, Any]) -> ChunkRow:
    tokens = entity["keywords"].split()
    return ChunkRow(
        chunk=Chunk.from_json(json.loads(entity["record"])),
        counts=Counter(tokens),
        length=len(tokens),
        neighbours=tuple(int(n) for n in entity["neighbours"].split(",") if n),
        sentences=int(entity["sentences"]),
    )


def _example_row(entity: Mapping[str, Any]) -> ExampleRow:
    data = json.loads(entity["record"])
    example: YamlExample | CommandExample = (
        YamlExample.from_json(data) if entity["type"] == "yaml"
        else CommandExample.from_json(data)
    )
    return ExampleRow(entity["type"], example, int(entity["owner"]))


class MilvusSource:
    """Where the service finds its index in Milvus: which generation the alias names, and
    a backend over it. Errors come out as MilvusIndexError, with a Chinese message."""

    def __init__(self, settings: Settings):
        # pymilvus logs every failed call with a traceback at ERROR; the service reports
        # failures itself, once.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        self.settings = settings
        self.base = settings.milvus_collection
        self._client: MilvusClient | None = None

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def generation(self) -> Generation | None:
        """The generation being served: one cheap call, made every poll."""
        try:
            return serving_generation(self.client, self.base)
        except MilvusIndexError:
            raise
        except Exception as exc:  # grpc and pymilvus errors
            raise MilvusIndexError(f"无法读取 Milvus（{self.settings.milvus_uri}）：{exc}") from exc

    def missing_reason(self) -> str:
        return f"Milvus（{self.settings.milvus_uri}）中没有索引 {self.base}，请先运行 notesqa index"

    def name(self, generation: Generation) -> str:
        return f"Milvus {self.base}（{generation} 代）"

    def backend(self) -> MilvusBackend:
        try:
            served = read_served(self.client, self.base)
            if served is None:
                raise MilvusIndexError(self.missing_reason())
            return MilvusBackend(self.client, self.base, served)
        except MilvusIndexError:
            raise
        except Exception as exc:
            raise MilvusIndexError(f"无法加载 Milvus 中的索引：{exc}") from exc
