"""Split a chunk's prose into sentences, each with its source line (a table row is one).

Sentences are the unit of an extractive answer, and each gets its own vector so a short
fact inside a long section can still be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
