"""A note as a web page: Markdown rendered on the server (markdown-it-py, raw HTML off), every
block tagged with its source lines so `#L59-L64` can highlight exactly what an answer cited.

Notes are untrusted: raw HTML is shown as text (`html: False`), markdown-it's link check drops
`javascript:`/`vbscript:`/`data:` links, and nothing here emits inline script or style, so the
page works under a strict Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.front_matter import front_matter_plugin
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound


@dataclass(frozen=True)
class OutlineEntry:
    level: int
    text: str
    line: int  # 1-based source line of the heading

    @property
    def anchor(self) -> str:
        return f"h-{self.line}"


@dataclass(frozen=True)
class RenderedNote:
    body: str  # HTML
    outline: list[OutlineEntry]
    line_count: int


def _lines_attr(start: int, end: int) -> str:
    """`data-lines="59-64"` (1-based, inclusive) from a markdown-it map ([start, end) 0-based)."""
    return f"{start + 1}-{max(start + 1, end)}"


def _code_class(ttype: _TokenType) -> str:
    while ttype not in STANDARD_TYPES and ttype.parent is not None:
        ttype = ttype.parent
    return STANDARD_TYPES.get(ttype, "")


def _lexer(info: str) -> Lexer | None:
    name = info.split()[0].lower() if info.strip() else ""
    if not name:
        return None
    try:
        # stripnl/ensurenl off: the lexer must not add or drop lines, or numbering drifts.
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def highlight_lines(code: str, info: str) -> list[str]:
    """One HTML string per source line of `code`, syntax-highlighted when the fence names a
    language Pygments knows."""
    lines = code.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lexer = _lexer(info)
    if lexer is None:
        return [escape(line) for line in lines]
    out: list[str] = [""]
    for ttype, value in lexer.get_tokens("\n".join(lines)):
        css = _code_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                out.append("")
            if part:
                out[-1] += f'<span class="{css}">{escape(part)}</span>' if css else escape(part)
    return out[: len(lines)] + [""] * (len(lines) - len(out))


def _fence(
    renderer: object, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    start = token.map[0] if token.map else 0
    # A fenced block's content starts on the line after the opening fence.
    first = start + 2 if token.type == "fence" else start + 1
    info = token.info.strip()
    rows = "".join(
        f'<span class="ln" data-lines="{n}-{n}" data-ln="{n}">{html or " "}</span>'
        for n, html in enumerate(highlight_lines(token.content, info), start=first)
    )
    label = escape(info.split()[0]) if info else "代码"
    return (
        f'<div class="code-block"><div class="code-label">{label}</div>'
        f"<pre><code>{rows}</code></pre></div>\n"
    )


def _front_matter(
    renderer: object, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    start = token.map[0] if token.map else 0
    rows = "".join(
        f'<span class="ln" data-lines="{n}-{n}" data-ln="{n}">{escape(line) or " "}</span>'
        for n, line in enumerate(token.content.rstrip("\n").split("\n"), start=start + 2)
    )
    return (
        '<details class="front-matter"><summary>元数据</summary>'
        f"<pre><code>{rows}</code></pre></details>\n"
    )


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"]).use(front_matter_plugin)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _fence)
    md.add_render_rule("front_matter", _front_matter)
    return md


_MD = _parser()
# Blocks a citation can point into; containers (lists, quotes) are found through these.
_LEAVES = {"paragraph_open", "heading_open", "tr_open", "hr"}


def render_note(text: str) -> RenderedNote:
    tokens = _MD.parse(text)
    outline: list[OutlineEntry] = []
    for i, token in enumerate(tokens):
        if token.type == "paragraph_open":
            # Tight lists hide their paragraphs; shown, each keeps its own line numbers.
            token.hidden = False
            if i + 2 < len(tokens) and tokens[i + 2].type == "paragraph_close":
                tokens[i + 2].hidden = False
        if token.type in _LEAVES and token.map:
            token.attrSet("data-lines", _lines_attr(*token.map))
            token.attrSet("data-ln", str(token.map[0] + 1))
        if token.type == "heading_open" and token.map:
            line = token.map[0] + 1
            token.attrSet("id", f"h-{line}")
            inline = tokens[i + 1]
            words = "".join(
                child.content
                for child in inline.children or []
                if child.type in ("text", "code_inline")
            )
            outline.append(OutlineEntry(int(token.tag[1]), " ".join(words.split()), line))
        for child in token.children or []:
            if child.type == "link_open":
                # Links leave the note page; the target need not know where from.
                child.attrSet("rel", "noopener noreferrer")
    body = _MD.renderer.render(tokens, _MD.options, {})
    return RenderedNote(body=body, outline=outline, line_count=text.count("\n") + 1)


def outline_html(outline: Sequence[OutlineEntry]) -> str:
    if not outline:
        return '<p class="muted">这篇笔记没有标题。</p>'
    top = min(entry.level for entry in outline)
    items = "".join(
        f'<li class="lvl-{min(entry.level - top, 3)}"><a href="#{entry.anchor}">'
        f"{escape(entry.text) or '（无标题）'}</a></li>"
        for entry in outline
    )
    return f"<ol>{items}</ol>"


def note_page(path: str, note: RenderedNote) -> str:
    """The whole HTML document for one note (no inline script or style)."""
    title = escape(path)
    quoted = escape(path, quote=True)
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · 笔记问答</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/note.js" defer></script>
</head>
<body class="note-view">
<header class="topbar">
  <a class="brand" href="/">笔记问答<span class="brand-sub">帮助台</span></a>
  <nav class="topnav"><a href="/notes/{quoted}?format=text" class="subtle">纯文本</a></nav>
</header>
<div class="note-layout">
  <aside class="outline" aria-label="标题大纲">
    <details open><summary>目录</summary>{outline_html(note.outline)}</details>
  </aside>
  <main class="note" data-path="{quoted}">
    <div class="note-head">
      <h1 class="note-path">{title}</h1>
      <p class="muted">共 {note.line_count} 行</p>
    </div>
    <div class="cite-banner" id="cite-banner" hidden>
      <span id="cite-label"></span>
      <a href="#" id="cite-clear">取消高亮</a>
    </div>
    <article class="markdown">
{note.body}
    </article>
  </main>
</div>
</body>
</html>
"""


def error_page(title: str, message: str, status: int) -> str:
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · 笔记问答</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header class="topbar">
  <a class="brand" href="/">笔记问答<span class="brand-sub">帮助台</span></a>
</header>
<main class="error-page">
  <h1>{escape(title)}</h1>
  <p>{escape(message)}</p>
  <p class="muted">HTTP {status} · <a href="/">返回问答</a></p>
</main>
</body>
</html>
"""
