"""Typed records that flow between the indexing stages and into the service."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class SourceDocument:
    """One decoded note file."""

    path: str  # relative to its corpus root, POSIX separators
    root: str  # absolute corpus root it was found under
    file: str  # absolute path of the file itself
    text: str
    encoding: str
    sha256: str  # of the raw bytes


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class YamlExample:
    """A YAML manifest found in a fenced block (one per YAML document)."""

    source: str
    lines: tuple[int, int]  # 1-based inclusive, the fence's content lines
    yaml: str
    valid: bool  # parsed as YAML
    kind: str | None = None
    api_version: str | None = None
    name: str | None = None
    # Checked against the Kubernetes OpenAPI schemas (None: not a manifest / not checked).
    k8s_valid: bool | None = None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lines"] = list(self.lines)
        data["problems"] = list(self.problems)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> YamlExample:
        return cls(
            **{
                **data,
                "lines": tuple(data["lines"]),
                "problems": tuple(data.get("problems", ())),
            }
        )


@dataclass(frozen=True)
class CommandExample:
    """A shell command block (``kubectl …``, ``helm …``, a flag list) found in a note."""

    source: str
    lines: tuple[int, int]  # 1-based inclusive, the block's content lines
    language: str  # "bash", "console", "powershell", … ("shell" when the fence says nothing)
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "lines": list(self.lines), "language": self.language,
                "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommandExample:
        return cls(data["source"], (data["lines"][0], data["lines"][1]), data["language"],
                   data["text"])


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a note: part of one section, with exact provenance."""

    id: str  # stable: hash of source, heading path and text
    source: str
    heading: tuple[str, ...]  # outermost first
    lines: tuple[int, int]  # 1-based inclusive
    text: str  # answer text (prose; code blocks kept verbatim)
    # Source line number of each line of ``text`` (lines may be skipped: front matter,
    # shortcodes, comments), so a sentence inside the chunk can cite its own lines.
    line_map: tuple[int, ...] = field(default=())
    yaml_ids: tuple[int, ...] = field(default=())  # indexes into the index's YAML list
    command_ids: tuple[int, ...] = field(default=())  # indexes into the index's commands
    # Positions (0-based, in ``text.split("\n")``) of lines that are table rows, written
    # "列名：值；列名：值": each is one whole fact, never split into sentences.
    table_rows: tuple[int, ...] = field(default=())

    def prose_lines(self) -> Iterator[tuple[str, int]]:
        """(text, source line) of the lines outside code fences."""
        line_map = self.line_map or tuple(range(self.lines[0], self.lines[1] + 1))
        fence: str | None = None
        for text, number in zip(self.text.split("\n"), line_map, strict=False):
            match = _FENCE.match(text)
            if fence is None:
                if match:
                    fence = match.group(1)
                    continue
                yield text, number
            elif (
                match
                and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence)
                and not text.strip().strip(fence[0])
            ):
                # A closing fence: the opening's character, at least as many, nothing else.
                fence = None

    def embedding_text(self) -> str:
        """What the dense model sees: the heading path gives short sections context."""
        head = " > ".join(self.heading)
        return f"{head}\n{self.text}" if head else self.text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "heading": list(self.heading),
            "lines": list(self.lines),
            "text": self.text,
            "line_map": list(self.line_map),
            "yaml_ids": list(self.yaml_ids),
            "command_ids": list(self.command_ids),
            "table_rows": list(self.table_rows),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chunk:
        return cls(
            id=data["id"],
            source=data["source"],
            heading=tuple(data["heading"]),
            lines=(data["lines"][0], data["lines"][1]),
            text=data["text"],
            line_map=tuple(data.get("line_map", ())),
            yaml_ids=tuple(data.get("yaml_ids", ())),
            command_ids=tuple(data.get("command_ids", ())),
            table_rows=tuple(data.get("table_rows", ())),
        )
