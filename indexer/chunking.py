"""Turn parsed notes into chunks that follow the heading structure.

Real notes are messy, so heading nesting is resolved with two rules on top of CommonMark:

* **Inverted levels.** Some notes open with `####` chapters and use `###` for their
  sections. When the first heading is deeper than a later one, headings at the first
  heading's level are chapters and the shallower ones are their sections; a chapter-level
  heading right under a section whose text announces a list ("以下是一些示例：") is that
  section's child instead.
* **Question lines.** A numbered or plain first line that is a short question
  ("1. k8s 是什么？有什么作用？") followed by its answer acts as a heading.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from indexer.markdown import Code, Heading, Line, ParsedNote, Prose, Table, parse_note
from indexer.types import SourceDocument

DEFAULT_MAX_CHARS = 300

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
_QUESTION_LINE = re.compile(r"^(?:\d{1,3}[.、)]\s*)?(.{2,50}[？?])\s*$")
_ANNOUNCES = ("：", ":")


@dataclass
class DraftChunk:
    """A chunk before YAML ids are assigned: text lines with their source numbers."""

    source: str
    heading: tuple[str, ...]
    lines: list[Line] = field(default_factory=list)
    codes: list[Code] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def table_rows(self) -> tuple[int, ...]:
        """Positions in ``text.split("\n")`` of the lines that are table rows."""
        return tuple(i for i, line in enumerate(self.lines) if line.row)

    @property
    def line_range(self) -> tuple[int, int]:
        numbers = [line.number for line in self.lines]
        return min(numbers), max(numbers)

    @property
    def size(self) -> int:
        return sum(len(line.text) for line in self.lines if not _is_fence_line(line))

    @property
    def id(self) -> str:
        key = "\x1f".join((self.source, *self.heading, self.text))
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def _is_fence_line(line: Line) -> bool:
    return line.text.lstrip().startswith(("```", "~~~"))


@dataclass
class _Section:
    heading: tuple[str, ...]
    blocks: list[Prose | Table | Code] = field(default_factory=list)
    # The question line that opened a pseudo-heading section: its text, should nothing
    # follow it (an unanswered question must not vanish from the index).
    question: Prose | None = None


@dataclass
class _Open:
    rank: float
    level: int
    text: str
    pseudo: bool = False
    attached: bool = False


def _question_split(block: Prose) -> tuple[str, Prose | None] | None:
    first = block.lines[0]
    match = _QUESTION_LINE.match(first.text)
    if not match:
        return None
    rest = Prose(block.lines[1:], block.in_list) if len(block.lines) > 1 else None
    return match.group(1).strip(), rest


def sections(note: ParsedNote) -> list[_Section]:
    """Group blocks under their resolved heading paths."""
    headings = [b for b in note.blocks if isinstance(b, Heading)]
    inverted_level: int | None = None
    if headings:
        first = headings[0].level
        if any(h.level < first for h in headings[1:]):
            inverted_level = first
    min_level = min((h.level for h in headings), default=1)

    stack: list[_Open] = []
    body_since_heading: list[str] = []
    blocks_since_heading = 0
    current = _Section(heading=())
    result = [current]

    def path() -> tuple[str, ...]:
        names = tuple(o.text for o in stack if o.text)
        if note.title and (not names or names[0] != note.title):
            return (note.title, *names)
        return names

    def open_heading(entry: _Open) -> None:
        nonlocal current, blocks_since_heading
        while stack and stack[-1].rank >= entry.rank:
            stack.pop()
        stack.append(entry)
        body_since_heading.clear()
        blocks_since_heading = 0
        current = _Section(heading=path())
        result.append(current)

    for block in note.blocks:
        if isinstance(block, Heading):
            rank: float = block.level
            attached = False
            if inverted_level is not None:
                if block.level < inverted_level:
                    rank = 1 + (block.level - min_level)
                elif block.level == inverted_level:
                    rank = 0
                    parent = next((o for o in reversed(stack) if not o.pseudo), None)
                    announces = "".join(body_since_heading).rstrip().endswith(_ANNOUNCES)
                    sibling_attached = parent is not None and parent.attached
                    if parent is not None and parent.level < inverted_level and announces:
                        rank, attached = parent.rank + 0.5, True
                    elif sibling_attached and parent is not None:
                        rank, attached = parent.rank, True
            # Question pseudo-headings never outlive a real heading's arrival.
            while stack and stack[-1].pseudo:
                stack.pop()
            open_heading(_Open(rank, block.level, block.text, attached=attached))
            if block.trailing:
                current.blocks.append(Prose((Line(block.line, block.trailing),)))
                body_since_heading.append(block.trailing)
            continue

        if isinstance(block, Prose) and blocks_since_heading == 0:
            split = _question_split(block)
            if split is not None:
                question, rest = split
                while stack and stack[-1].pseudo:
                    stack.pop()
                parent_rank = stack[-1].rank if stack else 0
                open_heading(_Open(parent_rank + 0.25, 99, question, pseudo=True))
                if rest is None:
                    current.question = Prose(block.lines[:1], block.in_list)
                    continue
                block = rest
        current.blocks.append(block)
        blocks_since_heading += 1
        if isinstance(block, Prose | Table):
            body_since_heading.append(block.text)
    for section in result:
        if not section.blocks and section.question is not None:
            section.blocks.append(section.question)
    return [s for s in result if s.blocks]


def _sentence_pieces(block: Prose) -> list[Line]:
    """Split a prose block's lines at Chinese/English sentence ends, keeping line numbers."""
    pieces: list[Line] = []
    for line in block.lines:
        for part in _SENTENCE_END.split(line.text):
            if part.strip():
                pieces.append(Line(line.number, part.strip()))
    return pieces


def chunk_sections(
    source: str, note_sections: list[_Section], max_chars: int = DEFAULT_MAX_CHARS
) -> list[DraftChunk]:
    chunks: list[DraftChunk] = []
    for section in note_sections:
        heading = section.heading
        draft = DraftChunk(source, heading)

        def flush() -> None:
            nonlocal draft
            if draft.lines:
                chunks.append(draft)
            draft = DraftChunk(source, heading)  # noqa: B023 - rebound per section on purpose

        for block in section.blocks:
            if isinstance(block, Code):
                # Code stays whole and with the prose that introduces it.
                draft.lines.extend(block.raw)
                draft.codes.append(block)
                if draft.size >= max_chars:
                    flush()
                continue
            units: list[list[Line]]
            block_size = sum(len(line.text) for line in block.lines)
            if block_size <= max_chars:
                units = [list(block.lines)]
            elif isinstance(block, Table):
                units = [[row] for row in block.lines]  # a row is one fact: never split
            else:
                units = [[piece] for piece in _sentence_pieces(block)]
            for unit in units:
                unit_size = sum(len(line.text) for line in unit)
                if draft.lines and draft.size + unit_size > max_chars:
                    # A line announcing what follows ("有多种类型的Service：") goes with it.
                    carried: list[Line] = []
                    last = draft.lines[-1]
                    if len(draft.lines) > 1 and not last.row and last.text.endswith(_ANNOUNCES):
                        carried = [draft.lines.pop()]
                    flush()
                    draft.lines.extend(carried)
                draft.lines.extend(unit)
        flush()
    return chunks


def chunk_document(doc: SourceDocument, max_chars: int = DEFAULT_MAX_CHARS) -> list[DraftChunk]:
    return chunk_sections(doc.path, sections(parse_note(doc.text)), max_chars)
