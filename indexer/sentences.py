"""Split a chunk's prose into sentences, each with its source line (a table row is one).

Sentences are the unit of an extractive answer, and each gets its own vector so a short
fact inside a long section can still be found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from indexer.types import Chunk

_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]*")
# A lone label ("示例：", "功能和作用：") says nothing on its own.
_LABEL_ONLY = re.compile(r"^[^。！？!?]{0,12}[：:]$")
MIN_CHARS = 4


@dataclass(frozen=True)
class SentenceRecord:
    chunk: int  # row of the chunk it belongs to
    order: int  # position inside the chunk
    line: int  # 1-based source line
    text: str

    def embedding_text(self, chunk: Chunk) -> str:
        # The nearest heading tells the model what "定义：..." is a definition of.
        return f"{chunk.heading[-1]}：{self.text}" if chunk.heading else self.text

    def to_json(self) -> dict[str, object]:
        return {"chunk": self.chunk, "order": self.order, "line": self.line, "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SentenceRecord:
        return cls(
            chunk=int(data["chunk"]),  # type: ignore[call-overload]
            order=int(data["order"]),  # type: ignore[call-overload]
            line=int(data["line"]),  # type: ignore[call-overload]
            text=str(data["text"]),
        )


def _table_row_lines(chunk: Chunk) -> set[tuple[str, int]]:
    """(text, source line) of the chunk's table rows."""
    texts = chunk.text.split("\n")
    line_map = chunk.line_map or tuple(range(chunk.lines[0], chunk.lines[1] + 1))
    return {
        (texts[i], line_map[i]) for i in chunk.table_rows if i < len(texts) and i < len(line_map)
    }


def split_sentences(chunk: Chunk, row: int) -> list[SentenceRecord]:
    result: list[SentenceRecord] = []
    rows = _table_row_lines(chunk)
    for text, number in chunk.prose_lines():
        if (text, number) in rows:
            # A table row is one fact whatever its "；" and length (the composer truncates).
            if text.strip():
                result.append(SentenceRecord(row, len(result), number, text.strip()))
            continue
        for match in _SENTENCE.finditer(text):
            piece = match.group(0).strip()
            if len(piece) >= MIN_CHARS and not _LABEL_ONLY.match(piece):
                result.append(SentenceRecord(row, len(result), number, piece))
    return result


class SentenceTable(Sequence[SentenceRecord]):
    """The index's sentences, read on demand from three files of the build (a 100k-chunk
    index has ~300k sentences: parsing them as JSON at start-up took seconds and ~100 MB).

        sentence_rows.npy           (n, 3) int32: chunk row, order, source line
        sentence_text.bin           the texts, UTF-8, one after another
        sentence_text_offsets.npy   (n + 1) int64 byte offsets into it

    Sentences are stored in chunk order, so a chunk's sentences are one contiguous range.
    """

    ROWS = "sentence_rows.npy"
    TEXT = "sentence_text.bin"
    OFFSETS = "sentence_text_offsets.npy"

    def __init__(self, folder: Path):
        # Plain views of the mappings: indexing a np.memmap object costs ~7 µs, a view ~1.
        self._rows = np.load(folder / self.ROWS, mmap_mode="r").view(np.ndarray)
        self._offsets = np.load(folder / self.OFFSETS, mmap_mode="r").view(np.ndarray)
        size = (folder / self.TEXT).stat().st_size
        self._text = (
            np.memmap(folder / self.TEXT, dtype=np.uint8, mode="r").view(np.ndarray) if size
            else np.zeros(0, dtype=np.uint8)
        )
        self.chunks = (
            np.ascontiguousarray(self._rows[:, 0]) if len(self._rows) else np.zeros(0, np.int32)
        )
        # Where each chunk's sentences start (one search for all chunks, not one a call).
        last = int(self.chunks[-1]) if len(self.chunks) else -1
        self._starts = np.searchsorted(self.chunks, np.arange(last + 2))

    @staticmethod
    def write(folder: Path, sentences: Sequence[SentenceRecord]) -> None:
        rows = np.array([(s.chunk, s.order, s.line) for s in sentences], dtype=np.int32)
        encoded = [s.text.encode("utf-8") for s in sentences]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        np.save(folder / SentenceTable.ROWS, rows.reshape(len(sentences), 3))
        np.save(folder / SentenceTable.OFFSETS, offsets)
        (folder / SentenceTable.TEXT).write_bytes(b"".join(encoded))

    def valid(self, chunk_count: int) -> bool:
        n = len(self._rows)
        return (
            self._rows.ndim == 2 and self._rows.shape[1] == 3
            and len(self._offsets) == n + 1
            and int(self._offsets[0]) == 0 and int(self._offsets[-1]) == len(self._text)
            and bool(np.all(np.diff(self._offsets) >= 0))
            and (n == 0 or (int(self.chunks.min()) >= 0 and int(self.chunks.max()) < chunk_count
                            and bool(np.all(np.diff(self.chunks) >= 0))))
        )

    def spans(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first, end) positions of the sentences of each chunk in `rows`, at once."""
        last = len(self._starts) - 1
        inside = np.minimum(rows, last)
        return self._starts[inside], self._starts[np.minimum(rows + 1, last)]

    def of_chunk(self, row: int) -> range:
        """Positions of chunk `row`'s sentences."""
        if not 0 <= row < len(self._starts) - 1:
            return range(0)  # after the last chunk that has sentences
        return range(int(self._starts[row]), int(self._starts[row + 1]))

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> SentenceRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[SentenceRecord]: ...

    def __getitem__(self, i: int | slice) -> SentenceRecord | list[SentenceRecord]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        chunk, order, line = (int(x) for x in self._rows[i])
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        return SentenceRecord(chunk, order, line, self._text[start:end].tobytes().decode("utf-8"))
