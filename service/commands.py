"""Choose the shell commands that go with an answer, and keep lead-in lines honest.

A lead-in line ("删除 ReplicaSet 及其关联 Pod 的命令如下：") says nothing without what it
introduces. When the answer chooses one, the block it introduces comes along: a command or
manifest is attached to the answer (a one-line command is also written into the line), a
list's items are brought by the composer; a lead-in whose block cannot be shown is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from indexer.types import Chunk, CommandExample, YamlExample
from service.answer import Sentence
from service.query import QueryAnalysis
from service.search_backend import Lookup

_LEAD_IN_END = ("：", ":")
# Any indentation: a fence inside a list item is indented like the item's text.
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_WORD = re.compile(r"[a-z0-9][a-z0-9.-]*")
INLINE_MAX_CHARS = 100  # a one-line command up to this long is written into the answer line
MAX_COMMANDS = 3


@dataclass(frozen=True)
class Introduced:
    """A code block a chosen lead-in line introduces."""

    kind: Literal["yaml", "command"]
    id: int  # into the index's YAML examples or commands
    chunk_row: int


@dataclass(frozen=True)
class MatchedCommand:
    id: int
    chunk_row: int


def introduced_blocks(
    chosen: Sequence[Sentence],
    hit_rows: Sequence[int],
    chunks: Lookup[Chunk],
    examples: Lookup[YamlExample],
    commands: Lookup[CommandExample],
) -> tuple[list[Sentence], list[Introduced]]:
    """The answer's sentences with every lead-in line either kept with what it introduces
    or dropped, and the code blocks the kept ones introduce."""
    kept: list[Sentence] = []
    introduced: list[Introduced] = []
    for sentence in chosen:
        if not sentence.text.rstrip().endswith(_LEAD_IN_END):
            kept.append(sentence)
            continue
        row = hit_rows[sentence.hit_rank]
        chunk = chunks[row]
        follows = _following(chunk, sentence.line)
        if follows is None:
            continue  # introduces nothing this chunk holds
        if follows == "prose":
            # A list or table: kept when the composer brought its first item along.
            if any(
                other.hit_rank == sentence.hit_rank and other.order == sentence.order + 1
                for other in chosen
            ):
                kept.append(sentence)
            continue
        block = _block_at(chunk, follows, examples, commands)
        if block is None:
            continue
        introduced.append(Introduced(block[0], block[1], row))
        if block[0] == "command":
            text = commands[block[1]].text
            if "\n" not in text and len(text) <= INLINE_MAX_CHARS:
                sentence = replace(sentence, text=f"{sentence.text.rstrip()}{text}")
        kept.append(sentence)
    return kept, introduced


def _following(chunk: Chunk, line: int) -> int | Literal["prose"] | None:
    """What comes after source line `line` in the chunk: the first content line of a code
    block, "prose", or None when nothing does."""
    numbers = chunk.line_map or tuple(range(chunk.lines[0], chunk.lines[1] + 1))
    texts = chunk.text.split("\n")
    after = [i for i, n in enumerate(numbers) if n > line and i < len(texts)]
    for i in after:
        if not texts[i].strip():
            continue
        if _FENCE.match(texts[i]):
            return numbers[i + 1] if i + 1 < len(numbers) else None
        return "prose"
    return None


def _block_at(
    chunk: Chunk,
    first_line: int,
    examples: Lookup[YamlExample],
    commands: Lookup[CommandExample],
) -> tuple[Literal["yaml", "command"], int] | None:
    for i in chunk.command_ids:
        if commands[i].lines[0] == first_line:
            return "command", i
    for i in chunk.yaml_ids:
        if examples[i].lines[0] == first_line:
            return "yaml", i
    return None


def match_commands(
    query: QueryAnalysis,
    cited_rows: Sequence[int],
    answer_rows: Sequence[int],
    introduced: Sequence[Introduced],
    chunks: Lookup[Chunk],
    commands: Lookup[CommandExample],
    neighbours: Callable[[int], Sequence[int]],
    limit: int = MAX_COMMANDS,
) -> list[MatchedCommand]:
    """The commands to show: those the answer's lead-ins introduce, then, when the question
    asks for a command, those in the cited sections; when it asks how to do something,
    those in the sections the answer's sentences come from. Nearer sections first; within
    one, commands sharing the question's words first."""
    chosen = [MatchedCommand(b.id, b.chunk_row) for b in introduced if b.kind == "command"]
    if query.wants_command:
        rows = list(dict.fromkeys([*answer_rows, *cited_rows]))
    elif query.asks_howto:
        rows = list(dict.fromkeys(answer_rows))
    else:
        return chosen[:limit]
    # A command often sits in the next chunk of the same section as the prose about it.
    rows = list(dict.fromkeys(r for row in rows for r in (row, *neighbours(row))))
    words = {w for t in query.tokens for w in _WORD.findall(t.lower())}
    seen = {c.id for c in chosen}
    ranked = sorted(
        (
            (position, -len(words & set(_WORD.findall(commands[i].text.lower()))), i, row)
            for position, row in enumerate(rows)
            for i in chunks[row].command_ids
            if i not in seen
        ),
    )
    chosen.extend(MatchedCommand(i, row) for _, _, i, row in ranked)
    return chosen[:limit]
