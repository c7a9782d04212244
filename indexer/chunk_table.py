"""The index's chunks, read from `chunks.jsonl` through stored byte offsets.

Parsing every chunk at start-up costs ~25 µs and ~4 KB of Python objects each: about 3 s
and 400 MB at 100k chunks, minutes and gigabytes at 1M, for rows of which a question reads
a few dozen. Small indexes are still parsed whole at load (every reference checked, no
decoding per request); above `EAGER_MAX_CHUNKS` a chunk is parsed when first read, and the
most recent are kept.

    chunks.jsonl         one Chunk record a line; row i is FAISS id i and BM25 document i
    chunk_offsets.npy    (n + 1) int64 byte offsets of the lines
    yaml_owner.npy       (YAML example count) int32: the row of the chunk each example is in
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import overload

import numpy as np

from indexer.types import Chunk

# Same bound as the exact dense search: below it, the whole table parses in well under 1 s.
EAGER_MAX_CHUNKS = 20_000
# Parsed chunks kept in the lazy regime: a question reads up to ~100 (both retrieval legs'
# candidates, their neighbours); popular sections stay parsed.
CACHE_SIZE = 8192


class ChunkTableError(ValueError):
    """The files disagree: `part` names the one to blame."""

    def __init__(self, part: str, detail: str):
        super().__init__(detail)
        self.part = part


class ChunkTable(Sequence[Chunk]):
    FILE = "chunks.jsonl"
    OFFSETS = "chunk_offsets.npy"
    YAML_OWNER = "yaml_owner.npy"

    def __init__(self, folder: Path, *, eager_max: int | None = None):
        self._offsets = np.load(folder / self.OFFSETS, mmap_mode="r").view(np.ndarray)
        self.yaml_owner = np.load(folder / self.YAML_OWNER)
        size = (folder / self.FILE).stat().st_size
        self._data = (
            np.memmap(folder / self.FILE, dtype=np.uint8, mode="r").view(np.ndarray) if size
            else np.zeros(0, dtype=np.uint8)
        )
        self._parsed: list[Chunk] | None = None
        # Set by check_references; until then a parse checks no reference.
        self._yaml_count: int | None = None
        self._command_count: int | None = None
        self._read = lru_cache(maxsize=CACHE_SIZE)(self._parse)
        if not self._offsets_valid():
            raise ChunkTableError(
                self.FILE, f"{self.OFFSETS} 与 {self.FILE} 不符（文件被截断或改动）"
            )
        self.eager = len(self) <= (EAGER_MAX_CHUNKS if eager_max is None else eager_max)
        if self.eager:
            self._parsed = [self._parse(row) for row in range(len(self))]

    @staticmethod
    def write(folder: Path, chunks: Sequence[Chunk], yaml_count: int) -> None:
        lines = [
            (json.dumps(chunk.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
            for chunk in chunks
        ]
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum([len(line) for line in lines], out=offsets[1:])
        (folder / ChunkTable.FILE).write_bytes(b"".join(lines))
        np.save(folder / ChunkTable.OFFSETS, offsets)
        owners = np.full(yaml_count, -1, dtype=np.int32)
        for row, chunk in enumerate(chunks):
            owners[list(chunk.yaml_ids)] = row
        np.save(folder / ChunkTable.YAML_OWNER, owners)

    def _offsets_valid(self) -> bool:
        offsets, n = self._offsets, len(self._offsets) - 1
        if offsets.ndim != 1 or n < 0 or int(offsets[0]) != 0:
            return False
        if int(offsets[-1]) != len(self._data):
            return False
        # Each line ends where the next begins: checked at the ends (reading every
        # boundary would page in the whole file at start-up) and by each parse.
        return n == 0 or (self._data[int(offsets[1]) - 1] == 10 and self._data[-1] == 10)

    def check_references(self, yaml_count: int, command_count: int) -> str | None:
        """Which file a chunk's references do not fit, checking what is parsed already (all
        of a small index; a large one checks each chunk as it is parsed)."""
        if len(self.yaml_owner) != yaml_count or (
            len(self.yaml_owner) and (int(self.yaml_owner.min()) < -1
                                      or int(self.yaml_owner.max()) >= len(self))
        ):
            return "yaml.jsonl"
        self._yaml_count, self._command_count = yaml_count, command_count
        for chunk in self._parsed or ():
            problem = self._bad_reference(chunk)
            if problem:
                return problem
        return None

    def _bad_reference(self, chunk: Chunk) -> str | None:
        if self._yaml_count is not None and any(
            not 0 <= i < self._yaml_count for i in chunk.yaml_ids
        ):
            return "yaml.jsonl"
        if self._command_count is not None and any(
            not 0 <= i < self._command_count for i in chunk.command_ids
        ):
            return "commands.jsonl"
        return None

    def _parse(self, row: int) -> Chunk:
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        raw = self._data[start:end].tobytes()
        if not raw.endswith(b"\n"):
            raise ChunkTableError(self.FILE, f"第 {row + 1} 行的位置与 {self.OFFSETS} 不符")
        try:
            chunk = Chunk.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ChunkTableError(self.FILE, f"第 {row + 1} 行无法解析：{exc}") from exc
        if self._parsed is None:  # lazy: checked here since not at load
            problem = self._bad_reference(chunk)
            if problem:
                raise ChunkTableError(problem, f"{self.FILE} 第 {row + 1} 行引用了不存在的示例")
        return chunk

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, row: int) -> Chunk: ...
    @overload
    def __getitem__(self, row: slice) -> list[Chunk]: ...
    def __getitem__(self, row: int | slice) -> Chunk | list[Chunk]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        if self._parsed is not None:
            return self._parsed[row]
        n = len(self)
        if not -n <= row < n:
            raise IndexError(row)
        return self._read(row % n)

    def __iter__(self) -> Iterator[Chunk]:
        if self._parsed is not None:
            return iter(self._parsed)
        # A full pass (a rebuild reading the previous build) does not churn the cache.
        return (self._parse(row) for row in range(len(self)))
