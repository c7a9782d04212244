"""Generated Markdown (hypothesis): random headings (ATX, setext, inverted levels), lists,
quotes, tables, HTML, fences opened and never closed, indented code, CRLF/LF/CR mixes, BOMs,
very long lines and empty files. The chunker never crashes, never loses a line and never
splits a fenced block (issue 12).

"Never loses a line": every generated line carries a unique token (k12x). Each body line's
token must land in a chunk's text (or in a heading path: a question line can become a
pseudo-heading); each heading's token must be in a chunk's heading path — or, when a fence
left open above swallowed it, in that block's text — as soon as anything was written under it
(a heading with nothing under it has nothing to record)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.chunking import chunk_document
from indexer.markdown import Code, parse_note
from indexer.reading import decode_note
from indexer.types import SourceDocument


@dataclass
class Note:
    lines: list[str] = field(default_factory=list)
    body_tokens: list[str] = field(default_factory=list)
    # heading token -> tokens written under it before the next heading
    headings: dict[str, list[str]] = field(default_factory=dict)
    current: str | None = None
    counter: int = 0

    def token(self) -> str:
        self.counter += 1
        return f"k{self.counter}x"

    def body(self, template: str) -> None:
        if "{t}" not in template:
            self.lines.append(template)
            return
        tok = self.token()
        self.lines.append(template.format(t=tok))
        self.body_tokens.append(tok)
        if self.current is not None:
            self.headings[self.current].append(tok)

    def heading(self, lines: list[str], tok: str) -> None:
        self.lines.extend(lines)
        self.headings[tok] = []
        self.current = tok


WORDS = st.sampled_from(["Pod 是最小的调度单位", "Service 暴露一组 Pod", "用 kubectl 查看",
                         "Secret 保存密码", "what is a Deployment", "配置：", "步骤如下："])
PUNCT = st.sampled_from(["", "。", "！", "？", "；", ".", "：", "…"])

BLOCKS = st.sampled_from([
    "atx", "setext", "para", "para2", "bullet", "ordered", "task", "nested", "quote", "table",
    "html", "fence", "fence-open", "tilde", "indented", "long", "question", "blank", "rule",
    "comment", "cmd-heading",
])


@st.composite
def notes(draw: st.DrawFn) -> Note:
    note = Note()
    open_fence = False
    for kind in draw(st.lists(BLOCKS, max_size=25)):
        if open_fence:
            break  # everything after a fence left open is inside it
        words, end = draw(WORDS), draw(PUNCT)
        if kind == "atx":
            tok = note.token()
            level = draw(st.integers(1, 6))
            note.heading(["", "#" * level + f" {tok} {words}", ""], tok)
        elif kind == "setext":
            tok = note.token()
            note.heading(["", f"{tok} {words}", draw(st.sampled_from(["===", "---"])), ""], tok)
        elif kind == "cmd-heading":
            tok = note.token()
            note.heading(["", f"#### {tok} 启动   minikube start", ""], tok)
        elif kind == "para":
            note.body("{t} " + words + end)
        elif kind == "para2":
            note.body("{t} " + words + end)
            note.body("{t} " + words + "，**加粗** `code` [链接](http://x) ![图](a.png)" + end)
        elif kind in ("bullet", "ordered", "task"):
            marker = {"bullet": "- ", "ordered": "1. ", "task": "- [ ] "}[kind]
            for _ in range(draw(st.integers(1, 4))):
                note.body(marker + "{t} " + words + end)
        elif kind == "nested":
            note.body("- {t} " + words)
            note.body("  - {t} " + words + end)
            note.body("    1. {t} " + words)
        elif kind == "quote":
            note.body("> {t} " + words + end)
            note.body("> > {t} " + words)
        elif kind == "table":
            note.lines.extend(["", "| 名称 | 说明 |", "| --- | :-: |"])
            for _ in range(draw(st.integers(1, 3))):
                note.body("| {t} | " + words + " |")
            note.lines.append("")
        elif kind == "html":
            note.lines.append("")
            note.body("<div class=\"x\">{t} " + words + "</div>")
            note.body("<p>{t} <b>" + words + "</b></p>")
            note.lines.append("")
        elif kind == "comment":
            note.lines.extend(["", "<!-- 作者备注，不算正文 -->", ""])
        elif kind in ("fence", "fence-open", "tilde"):
            mark = "~~~" if kind == "tilde" else "```"
            note.lines.append(mark + draw(st.sampled_from(["", "yaml", "bash", "text"])))
            for _ in range(draw(st.integers(0, 4))):
                note.body(draw(st.sampled_from(["{t}: value", "  - {t}", "# {t} 不是标题",
                                                "{t} ```", "", "kind: {t}"])))
            if kind == "fence-open":
                open_fence = True
                continue
            note.lines.append(mark)
        elif kind == "indented":
            note.lines.append("")
            note.body("    {t} indented code")
            note.lines.append("")
        elif kind == "long":
            note.body("{t} " + (words + end) * draw(st.integers(50, 400)))
        elif kind == "question":
            note.lines.append("")
            note.body("1. {t} 这个对象是什么？")
            note.body("{t} " + words + end)
        elif kind == "blank":
            note.lines.extend([""] * draw(st.integers(1, 3)))
        elif kind == "rule":
            note.lines.extend(["", "***", ""])
    return note


@st.composite
def raw_files(draw: st.DrawFn) -> tuple[bytes, Note]:
    note = draw(notes())
    newline = draw(st.sampled_from(["\n", "\r\n", "mixed", "\r"]))
    parts = []
    for i, line in enumerate(note.lines):
        sep = newline if newline != "mixed" else ("\r\n" if i % 2 else "\n")
        parts.append(line + sep)
    text = "".join(parts)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-bom", "gb18030"]))
    if encoding == "utf-8-bom":
        raw = b"\xef\xbb\xbf" + text.encode("utf-8")
    else:
        raw = text.encode(encoding)
    return raw, note


def chunks_of(raw: bytes):  # type: ignore[no-untyped-def]
    text, encoding = decode_note(raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as indexer.reading does
    doc = SourceDocument("gen.md", "/corpus", "/corpus/gen.md", text, encoding, "0" * 64)
    return text, chunk_document(doc, max_chars=120)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw_files())
def test_the_chunker_keeps_every_line_and_every_fence_whole(generated: tuple[bytes, Note]) -> None:
    raw, note = generated
    text, chunks = chunks_of(raw)
    texts = "\n".join(c.text for c in chunks)
    paths = {name for c in chunks for part in c.heading for name in part.split()}
    for tok in note.body_tokens:
        assert tok in texts or tok in paths, (tok, text)
    for tok, under in note.headings.items():
        if under:
            assert tok in paths or tok in texts, (tok, text)
    lines = text.split("\n")
    for chunk in chunks:
        start, end = chunk.line_range
        assert 1 <= start <= end <= len(lines)
    # A fenced block's lines are all in one chunk.
    for block in parse_note(text).blocks:
        if isinstance(block, Code):
            numbers = {line.number for line in block.raw}
            holders = [c for c in chunks if numbers & {line.number for line in c.lines}]
            assert len(holders) == 1, (block, text)
            assert numbers <= {line.number for line in holders[0].lines}


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=3000))
def test_any_text_at_all_chunks_without_crashing(text: str) -> None:
    doc = SourceDocument("any.md", "/c", "/c/any.md", text.replace("\r", "\n"), "utf-8", "0" * 64)
    for chunk in chunk_document(doc, max_chars=80):
        assert chunk.lines


def test_an_empty_file_and_blank_files_have_no_chunks() -> None:
    for raw in (b"", b"\xef\xbb\xbf", b"\n\n\r\n", b"   \n\t\n"):
        assert chunks_of(raw)[1] == []
