"""Parse a note into typed blocks with exact source line numbers (markdown-it-py line maps).

Only structure is decided here (what is a heading, prose or code); how headings nest in
messy notes and how sections become chunks is `indexer.chunking`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin


@dataclass(frozen=True)
class Line:
    number: int  # 1-based source line
    text: str  # cleaned of Markdown syntax


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


Block = Heading | Prose | Code


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
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
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


def _clean_table_line(raw: str) -> str:
    if _TABLE_RULE.match(raw):
        return ""
    cells = [clean_inline(cell) for cell in raw.strip().strip("|").split("|")]
    return " | ".join(cell for cell in cells if cell)


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
            start, end = tok.map
            rows = tuple(Line(n + 1, _clean_table_line(lines[n])) for n in range(start, end))
            rows = tuple(row for row in rows if row.text)
            if rows:
                note.blocks.append(Prose(rows))
            while tokens[i].type != "table_close":
                i += 1
        i += 1
    return note
