"""The index in Milvus: collections, keys, and what the service reads at start.

Each build is written into one of two generations, ``a`` and ``b``, of five collections:

    <base>_<g>_chunks     one row per chunk: HNSW (COSINE) over the chunk vector, BM25 (a
                          Milvus function over a jieba analyzer) over the chunk's keyword
                          tokens, and what a citation needs (the chunk record as JSON)
    <base>_<g>_sentences  one row per sentence: its vector (HNSW, COSINE), chunk key,
                          source, line, order and text
    <base>_<g>_examples   YAML manifests and commands, by kind and owning chunk
    <base>_<g>_notes      each note's text as indexed (for the note view), in parts
    <base>_<g>_meta       corpus-level data in parts: vocabulary with document frequencies
                          (for idf), average length, the English table, names, the manifest

The alias ``<base>`` names the meta collection of the generation being served. A build
writes the other generation (upserting what changed, deleting what went) and only then
moves the alias, so an interrupted build leaves the previous content serving; replicas
notice the move within `reload_poll_seconds`.

Keys are 63-bit integers from content hashes: an unchanged chunk keeps its key and row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pymilvus import DataType, Function, FunctionType, MilvusClient

from indexer.settings import Settings

Generation = Literal["a", "b"]
PARTS = ("chunks", "sentences", "examples", "notes", "meta")
TEXT_MAX = 65_535  # Milvus's VARCHAR limit, in bytes
# Note texts and corpus-level data are cut into parts of at most this many characters
# (4 bytes each at most in UTF-8).
PART_CHARS = 16_000
DUMMY_DIM = 2  # collections without a vector of their own still need one in Milvus
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 256
# Keyword field analyzer. The field holds the chunk's tokens as this project's tokenizer
# produced them (jieba with the Kubernetes dictionary, lowercased), space-separated: the
# engine's jieba analyzer then finds the same words the service scores.
ANALYZER = {"tokenizer": {"type": "jieba", "mode": "search"}}
QUERY_BATCH = 512  # keys per "id in [...]" query


class MilvusIndexError(RuntimeError):
    """Milvus holds no index, or one this service cannot use (message in Chinese)."""


def connect(settings: Settings) -> MilvusClient:
    """A client for `settings.milvus_uri` (a .db path starts milvus-lite in this process)."""
    if not settings.milvus_uri:
        raise MilvusIndexError("未设置 NOTESQA_MILVUS_URI")
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    try:
        return MilvusClient(uri=settings.milvus_uri, token=token, db_name=settings.milvus_db)
    except Exception as exc:  # the client raises its own and grpc's errors
        raise MilvusIndexError(f"无法连接 Milvus（{settings.milvus_uri}）：{exc}") from exc


def sentence_key(chunk_key: int, order: int) -> int:
    return key_of("sentence", chunk_key, order)


def key_of(*parts: object) -> int:
    """A stable positive 63-bit key from content."""
    digest = hashlib.blake2b(
        json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1 or 1


def collection(base: str, generation: Generation, part: str) -> str:
    return f"{base}_{generation}_{part}"


def other(generation: Generation) -> Generation:
    return "b" if generation == "a" else "a"


def serving_generation(client: MilvusClient, base: str) -> Generation | None:
    """The generation the alias names, or None before the first build."""
    try:
        target = client.describe_alias(alias=base).get("collection_name", "")
    except Exception:
        if not any(client.has_collection(collection(base, g, "meta")) for g in ("a", "b")):
            return None  # nothing was ever published here
        raise
    for generation in ("a", "b"):
        if target == collection(base, generation, "meta"):
            return generation  # type: ignore[return-value]
    return None


def create_collections(client: MilvusClient, base: str, generation: Generation, dim: int) -> None:
    """The generation's collections, created where missing."""
    for part, (schema, index) in _schemas(client, dim).items():
        name = collection(base, generation, part)
        if not client.has_collection(name):
            client.create_collection(name, schema=schema)
            # Not waited for here (pymilvus polls every 0.5 s per index); loading waits.
            client.create_index(name, index, sync=False)


def drop_generation(client: MilvusClient, base: str, generation: Generation) -> None:
    for part in PARTS:
        name = collection(base, generation, part)
        if client.has_collection(name):
            client.drop_collection(name)


def _schemas(client: MilvusClient, dim: int) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}

    chunks = client.create_schema(auto_id=False)
    chunks.add_field("id", DataType.INT64, is_primary=True)
    chunks.add_field("digest", DataType.VARCHAR, max_length=32)  # of every stored field
    chunks.add_field("vkey", DataType.VARCHAR, max_length=64)  # of the embedded text
    chunks.add_field("source", DataType.VARCHAR, max_length=2048)
    chunks.add_field("record", DataType.VARCHAR, max_length=TEXT_MAX)
    chunks.add_field("keywords", DataType.VARCHAR, max_length=TEXT_MAX,
                     enable_analyzer=True, analyzer_params=ANALYZER)
    chunks.add_field("neighbours", DataType.VARCHAR, max_length=64)
    # Sentence keys are (chunk key, position): with the count, a chunk's sentences are read
    # by primary key, the cheapest read in Milvus (a filter on `chunk` scans in milvus-lite).
    chunks.add_field("sentences", DataType.INT64)
    chunks.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    chunks.add_function(Function(
        name="keywords_bm25", function_type=FunctionType.BM25,
        input_field_names=["keywords"], output_field_names=["sparse"],
    ))
    index = client.prepare_index_params()
    index.add_index("dense", index_type="HNSW", metric_type="COSINE",
                    params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    out["chunks"] = (chunks, index)

    sentences = client.create_schema(auto_id=False)
    sentences.add_field("id", DataType.INT64, is_primary=True)
    sentences.add_field("chunk", DataType.INT64)
    sentences.add_field("vkey", DataType.VARCHAR, max_length=64)
    sentences.add_field("source", DataType.VARCHAR, max_length=2048)
    sentences.add_field("line", DataType.INT64)
    sentences.add_field("ord", DataType.INT64)
    sentences.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    sentences.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("dense", index_type="HNSW", metric_type="COSINE",
                    params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
    index.add_index("chunk", index_type="INVERTED")
    index.add_index("source", index_type="INVERTED")
    out["sentences"] = (sentences, index)

    examples = client.create_schema(auto_id=False)
    examples.add_field("id", DataType.INT64, is_primary=True)
    examples.add_field("type", DataType.VARCHAR, max_length=16)  # "yaml" or "command"
    examples.add_field("kind", DataType.VARCHAR, max_length=256)  # lowercased
    examples.add_field("owner", DataType.INT64)  # chunk key
    examples.add_field("record", DataType.VARCHAR, max_length=TEXT_MAX)
    examples.add_field("v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    index.add_index("kind", index_type="INVERTED")
    out["examples"] = (examples, index)

    for part in ("notes", "meta"):
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("name", DataType.VARCHAR, max_length=128)  # sha256 / "meta"
        schema.add_field("part", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
        index = client.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        index.add_index("name", index_type="INVERTED")
        out[part] = (schema, index)
    return out


def parts_of(text: str) -> list[str]:
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]


def part_rows(name: str, text: str) -> list[dict[str, Any]]:
    return [
        {"id": key_of("part", name, i), "name": name, "part": i, "text": piece,
         "v": [0.0] * DUMMY_DIM}
        for i, piece in enumerate(parts_of(text))
    ]


def read_parts(client: MilvusClient, name: str, collection_name: str) -> str | None:
    rows = client.query(
        collection_name, filter=f"name == {json.dumps(name)}", output_fields=["part", "text"],
        limit=16_384,
    )
    if not rows:
        return None
    rows.sort(key=lambda r: r["part"])
    return "".join(r["text"] for r in rows)


def encode_meta(meta: dict[str, Any]) -> str:
    """Corpus-level data as one compressed text (the vocabulary is most of it)."""
    raw = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_meta(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)).decode("utf-8"))
    return data


@dataclass(frozen=True)
class Served:
    """What the alias names: its generation and that generation's corpus-level data."""

    generation: Generation
    meta: dict[str, Any]

    @property
    def build(self) -> str:
        return f"milvus:{self.generation}:{self.meta.get('build_id', '')}"


def read_served(client: MilvusClient, base: str) -> Served | None:
    """The generation being served and its meta, or None when Milvus holds no index."""
    generation = serving_generation(client, base)
    if generation is None:
        return None
    name = collection(base, generation, "meta")
    client.load_collection(name)
    text = read_parts(client, "meta", name)
    if text is None:
        raise MilvusIndexError(f"Milvus 集合 {name} 中没有索引元数据，请重新运行 notesqa index")
    return Served(generation, decode_meta(text))


def ids_in(keys: Sequence[int]) -> Iterator[str]:
    """`id in [...]` filters of at most QUERY_BATCH keys each."""
    for i in range(0, len(keys), QUERY_BATCH):
        yield f"id in [{','.join(str(int(k)) for k in keys[i : i + QUERY_BATCH])}]"


def field_in(field: str, values: Sequence[str]) -> Iterator[str]:
    for i in range(0, len(values), QUERY_BATCH):
        yield f"{field} in {json.dumps(list(values[i : i + QUERY_BATCH]), ensure_ascii=False)}"
