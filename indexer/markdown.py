"""Parse a note into typed blocks with exact source line numbers (markdown-it-py line maps).

Only structure is decided here (what is a heading, prose, a table or code); how headings nest
in messy notes and how sections become chunks is `indexer.chunking`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import zip_longest

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin


@dataclass(frozen=True)
class Line:
    number: int  # 1-based source line
    text: str  # cleaned of Markdown syntax
    # A table row written "列名：值；列名：值": one whole fact, never split into sentences.
    row: bool = False


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    line: int
    # Text that was written on the heading line but is body, e.g. a command.
    trailing: str = ""


@dataclass(frozen=True)
class Prose:
    lines: tuple[Line, ...]
    in_list: bool = False

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class Code:
    info: str  # fence info string ("yaml", "bash", "" ...)
    code: str  # the content, without fences
    start: int  # first source line of the block (the opening fence)
    end: int  # last source line (the closing fence when present)
    content_start: int  # first content line
    content_end: int  # last content line
    raw: tuple[Line, ...]  # verbatim source lines, fences included


@dataclass(frozen=True)
class TableRow:
    number: int  # 1-based source line
    cells: tuple[str, ...]  # cleaned; may be fewer or more than the header's


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]  # column names, cleaned ("" where the header cell is empty)
    header_line: int
    rows: tuple[TableRow, ...]  # body rows that say something (rules and empty rows dropped)
    in_list: bool = False

    @property
    def lines(self) -> tuple[Line, ...]:
        """One line per row, "列名：值；列名：值" in column order (the key column first), so
        each row reads as a fact on its own; empty cells are left out, and a cell without a
        column name (no header, or more cells than the header) is written alone."""
        result = []
        for row in self.rows:
            parts = [
                f"{name}：{value}" if name else value
                for name, value in zip_longest(self.header, row.cells, fillvalue="")
                if value
            ]
            text = "；".join(parts)
            if _FENCE_LIKE.match(text):
                text = text.lstrip(" `~")  # a row read back as a fence would hide what follows
            result.append(Line(row.number, text, row=True))
        return tuple(result)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


Block = Heading | Prose | Table | Code


@dataclass
class ParsedNote:
    title: str | None = None
    front_matter: dict[str, object] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


_parser = MarkdownIt("commonmark", {"html": True}).enable("table").use(front_matter_plugin)

_LIST_MARKER = re.compile(r"^\s*(?:>\s*)*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?")
_QUOTE_MARKER = re.compile(r"^\s*(?:>\s?)+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_SHORTCODE = re.compile(r"\{\{[<%].*?[%>]\}\}")
_HTML_COMMENT = re.compile(r"<!--.*?-->")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_EMPHASIS = re.compile(r"(\*\*|__|~~)")
_RULE_CELL = re.compile(r"^[-=:+\s]*$")  # "----" drawn between rows of an ASCII-art table
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_FENCE_LIKE = re.compile(r"^\s*(`{3}|~{3})")
# Commands people type straight into a heading line, e.g. "#### 启动 minikube   minikube start".
_CLI_WORDS = (
    "kubectl|minikube|docker|helm|kubeadm|curl|wget|sudo|apt|apt-get|yum|systemctl|git"
    "|etcdctl|crictl|ctr|kind|k3s|podman|istioctl|make|pip|go|npm"
)
_COMMAND_IN_HEADING = re.compile(rf"\s{{2,}}((?:{_CLI_WORDS})\s+\S.*)$")


def clean_inline(text: str) -> str:
    """Strip inline Markdown/HTML syntax from one line, keeping the words."""
    text = _SHORTCODE.sub("", text)
    text = _HTML_COMMENT.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = text.replace("`", "")
    return text.strip()


def _clean_prose_line(raw: str) -> str:
    raw = _LIST_MARKER.sub("", raw)
    raw = _QUOTE_MARKER.sub("", raw)
    return clean_inline(raw)


def _clean_cell(raw: str) -> str:
    # Code spans are kept verbatim: a flag like `--schedule=<cron>` is no HTML tag. They are
    # set aside as private-use placeholders so links around them still clean up.
    spans: list[str] = []

    def hold(match: re.Match[str]) -> str:
        spans.append(match.group(2).strip())
        return f"\ue000{len(spans) - 1}\ue001"

    text = _CODE_SPAN.sub(hold, raw.replace("\ue000", "").replace("\ue001", ""))
    # "<br>" breaks a long cell into lines: keep the words apart.
    text = clean_inline(_BREAK.sub(" ", text))
    text = re.sub("\ue000(\\d+)\ue001", lambda m: spans[int(m.group(1))], text)
    # A trailing "。；" would clash with the "；" that joins cells.
    return text.rstrip("。；;").strip()


def _split_row(raw: str) -> list[str]:
    """A row's cells as GFM splits them (at pipes not escaped with a backslash)."""
    text = _QUOTE_MARKER.sub("", raw).strip()
    cells = re.split(r"(?<!\\)\|", text)
    if cells and not cells[0].strip():
        cells.pop(0)
    if cells and not cells[-1].strip():
        cells.pop()
    return [cell.replace("\\|", "|") for cell in cells]


def _table(tokens: list[Token], i: int, lines: list[str], in_list: bool) -> tuple[Table, int]:
    """Read the table opening at tokens[i]; returns it and the index of its table_close."""
    header: list[str] = []
    header_line = (tokens[i].map or [0])[0] + 1
    rows: list[TableRow] = []
    cells: list[str] = []
    number = header_line
    in_head = False
    while tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "thead_open":
            in_head = True
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "tr_open":
            cells = []
            number = (tok.map or [number - 1])[0] + 1
        elif tok.type == "inline":
            cells.append(_clean_cell(tok.content))
        elif tok.type == "tr_close":
            if in_head:
                header, header_line = [c.rstrip("：:").strip() for c in cells], number
            else:
                # markdown-it drops cells beyond the header's count; they are still the
                # author's words, so they are read back from the source line.
                extra = [_clean_cell(c) for c in _split_row(lines[number - 1])[len(header):]]
                cells = cells + extra
                if any(cells) and not all(_RULE_CELL.match(c) for c in cells):
                    rows.append(TableRow(number, tuple(cells)))
        i += 1
    return Table(tuple(header), header_line, tuple(rows), in_list=in_list), i


def split_heading(raw_text: str) -> tuple[str, str]:
    """Separate a command typed into a heading line from the heading's words."""
    match = _COMMAND_IN_HEADING.search(raw_text)
    words, trailing = raw_text, ""
    if match and match.start() > 0:
        words, trailing = raw_text[: match.start()], match.group(1).strip()
    return " ".join(words.split()), trailing


# Limits on YAML read from notes (front matter here, examples in indexer/yaml_examples.py):
# notes are written by many people, and YAML's aliases let a few lines stand for billions of
# nodes ("billion laughs"). PyYAML's safe loader shares aliased nodes instead of copying
# them, so loading is cheap, but anything that walks the result (validation, str(), JSON)
# would expand them.
MAX_YAML_CHARS = 100_000  # per fenced block or front matter
MAX_YAML_NODES = 10_000  # scalars, lists and mappings, counting every alias as expanded
MAX_YAML_DEPTH = 64


class YamlLimitError(ValueError):
    """YAML over the limits above; the message says which, in Chinese."""


def check_yaml_limits(text: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> None:
    """Raise YamlLimitError when `text` is too large, too deep, expands to too many nodes
    through aliases, or refers to itself. Only composes (no object is constructed), in time
    linear in the text. Parse errors propagate as yaml.YAMLError."""
    if len(text) > MAX_YAML_CHARS:
        raise YamlLimitError(f"YAML 太大：{len(text)} 个字符，最多 {MAX_YAML_CHARS} 个")
    # PyYAML's scanner slows down quadratically with flow nesting ("[[[[..."), before any
    # node exists: brackets are counted first (quoted brackets count too, which errs on
    # the safe side only for YAML no note needs).
    if text.count("[") + text.count("{") > MAX_YAML_DEPTH and _flow_depth(text) > MAX_YAML_DEPTH:
        raise YamlLimitError(f"YAML 嵌套太深：超过 {MAX_YAML_DEPTH} 层")
    sizes: dict[int, int] = {}
    total = 0
    try:
        for root in yaml.compose_all(text, Loader=loader):
            if root is not None:
                total += _expanded_size(root, sizes, set(), 0)
                if total > MAX_YAML_NODES:
                    raise YamlLimitError(_too_many(total))
    except RecursionError:
        raise YamlLimitError(f"YAML 嵌套太深：超过 {MAX_YAML_DEPTH} 层") from None


def _flow_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}" and depth:
            depth -= 1
    return deepest


def _too_many(count: int) -> str:
    return f"YAML 展开后节点太多：超过 {MAX_YAML_NODES} 个（可能是别名炸弹）"


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int], depth: int) -> int:
    """Nodes `node` stands for once every alias is expanded; each distinct node is counted
    once (memoised), so a 9-level alias bomb costs 9 steps, not 10^9."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise YamlLimitError("YAML 的锚点引用了自身（循环引用）")
    if depth > MAX_YAML_DEPTH:
        raise YamlLimitError(f"YAML 嵌套太深：超过 {MAX_YAML_DEPTH} 层")
    size = 1
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
        open_.add(key)
        children: list[yaml.Node] = (
            list(node.value) if isinstance(node, yaml.SequenceNode)
            else [n for pair in node.value for n in pair]
        )
        for child in children:
            size += _expanded_size(child, sizes, open_, depth + 1)
            if size > MAX_YAML_NODES:
                raise YamlLimitError(_too_many(size))
        open_.discard(key)
    sizes[key] = size
    return size


def _front_matter(content: str) -> dict[str, object]:
    try:
        check_yaml_limits(content)
        data = yaml.safe_load(content)
    except (yaml.YAMLError, YamlLimitError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_note(text: str) -> ParsedNote:
    lines = text.split("\n")
    note = ParsedNote()
    tokens = _parser.parse(text)
    list_depth = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "front_matter" and tok.map:
            note.front_matter = _front_matter(tok.content)
            title = note.front_matter.get("title")
            note.title = str(title).strip() if title else None
        elif kind == "heading_open" and tok.map:
            inline = tokens[i + 1]
            words, trailing = split_heading(clean_inline(inline.content))
            note.blocks.append(
                Heading(int(tok.tag[1:]), words, tok.map[0] + 1, trailing=trailing)
            )
            i += 3
            continue
        elif kind == "paragraph_open" and tok.map:
            start, end = tok.map
            cleaned = tuple(
                Line(n + 1, _clean_prose_line(lines[n])) for n in range(start, end)
            )
            cleaned = tuple(line for line in cleaned if line.text)
            if cleaned:
                note.blocks.append(Prose(cleaned, in_list=list_depth > 0))
        elif kind in ("fence", "code_block") and tok.map:
            start, end = tok.map  # end is exclusive, includes the closing fence
            fenced = kind == "fence"
            content_start = start + 2 if fenced else start + 1
            content_lines = tok.content.rstrip("\n").split("\n") if tok.content else []
            content_end = content_start + len(content_lines) - 1
            note.blocks.append(
                Code(
                    info=tok.info.strip() if fenced else "",
                    code=tok.content,
                    start=start + 1,
                    end=end,
                    content_start=content_start,
                    content_end=max(content_end, content_start - 1),
                    raw=tuple(Line(n + 1, lines[n]) for n in range(start, end)),
                )
            )
        elif kind == "html_block" and tok.map:
            # Comments are notes to the author, not answer text.
            if not tok.content.lstrip().startswith("<!--"):
                start, end = tok.map
                cleaned = tuple(
                    Line(n + 1, clean_inline(lines[n])) for n in range(start, end)
                )
                cleaned = tuple(line for line in cleaned if line.text)
                if cleaned:
                    note.blocks.append(Prose(cleaned))
        elif kind == "table_open" and tok.map:
            # The header row alone is no fact: a table without body rows adds nothing.
            table, i = _table(tokens, i, lines, in_list=list_depth > 0)
            if table.rows:
                note.blocks.append(table)
        i += 1
    return note
