"""`GET /notes/{path}`: plain text for API clients (unchanged), a rendered page for browsers,
with every block tagged by its source lines; untrusted note HTML stays text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.tokenization import Tokenizer
from service.app import create_app
from service.note_html import highlight_lines, render_note
from tests.conftest import NOTES

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

HOSTILE_NOTE = """# 值班交接

值班交接时要填写交接记录。<script>window.__pwned = 1</script>

<img src=x onerror="window.__pwned = 2">

模板见 [这里](javascript:window.__pwned=3)，或 [Secret 笔记](k8s-notes.md#L180-L181)。

<a href="javascript:alert(1)">原始链接</a>
"""


@pytest.fixture
def client(hashing_settings: Settings, notes_corpus: Path) -> Iterator[TestClient]:
    (notes_corpus / "ops").mkdir()
    (notes_corpus / "ops" / "handover.md").write_text(HOSTILE_NOTE, "utf-8")
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    with TestClient(create_app(hashing_settings)) as c:
        yield c


def test_api_clients_still_get_the_plain_text(client: TestClient) -> None:
    r = client.get("/notes/k8s-notes.md")
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == NOTES.read_text("utf-8")
    forced = client.get("/notes/k8s-notes.md?format=text", headers=BROWSER)
    assert forced.text == r.text


def test_a_browser_gets_the_note_as_a_page_with_source_lines(client: TestClient) -> None:
    r = client.get("/notes/k8s-notes.md", headers=BROWSER)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page = r.text
    # Line 179 of the note is "### Secret", line 180 its definition.
    assert '<h3 data-lines="179-179" data-ln="179" id="h-179">Secret</h3>' in page
    assert re.search(r'<p data-lines="180-180"[^>]*><strong>定义</strong>：Secret', page)
    # The outline links every heading.
    assert '<a href="#h-179">Secret</a>' in page
    # The Deployment manifest: one numbered, highlighted span per source line.
    source = NOTES.read_text("utf-8").split("\n")
    n = source.index("kind: Deployment") + 1
    assert re.search(
        rf'<span class="ln" data-lines="{n}-{n}" data-ln="{n}"><span class="nt">kind</span>', page
    )
    assert client.get("/notes/k8s-notes.md?format=html").text == page


def test_every_cited_line_range_lands_on_rendered_blocks(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "Ingress 和 Service 有什么区别？"}).json()
    page = client.get("/notes/k8s-notes.md", headers=BROWSER).text
    ranges = [tuple(map(int, m)) for m in re.findall(r'data-lines="(\d+)-(\d+)"', page)]
    for citation in body["citations"]:
        start, end = citation["lines"]
        assert any(a <= end and b >= start for a, b in ranges), citation


def test_html_and_script_in_a_note_stay_text(client: TestClient) -> None:
    page = client.get("/notes/ops/handover.md", headers=BROWSER).text
    article = page.split('<article class="markdown">')[1]
    assert "<script" not in article and "<img" not in article
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in article
    assert "onerror=" not in re.sub(r"&quot;|&lt;[^&]*&gt;", "", article.replace(
        '&lt;img src=x onerror=&quot;window.__pwned = 2&quot;&gt;', ""))
    assert 'href="javascript:' not in page.lower()
    # Relative links between notes keep working (resolved against /notes/ops/).
    assert '<a href="k8s-notes.md#L180-L181" rel="noopener noreferrer">' in article
    # Only same-origin script files, never inline code.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/note.js" defer>']


@pytest.mark.parametrize("path", ["missing.md", "%2e%2e/%2e%2e/etc/passwd", "ops/nope.md"])
def test_unknown_notes_are_a_404_page_or_json(client: TestClient, path: str) -> None:
    page = client.get(f"/notes/{path}", headers=BROWSER)
    assert page.status_code == 404 and "没有这篇笔记" in page.text
    assert page.headers["content-type"].startswith("text/html")
    api = client.get(f"/notes/{path}")
    assert api.status_code == 404 and "没有这篇笔记" in api.json()["message"]
    assert client.get("/notes/../pyproject.toml", headers=BROWSER).status_code == 404


def test_an_unknown_format_is_a_422_in_chinese(client: TestClient) -> None:
    r = client.get("/notes/k8s-notes.md?format=pdf")
    assert r.status_code == 422
    assert r.json()["message"] == "请求参数有误：format 只能是 html 或 text"


def test_the_chat_page_and_its_assets(client: TestClient) -> None:
    page = client.get("/", headers=BROWSER)
    assert page.status_code == 200 and "default-src 'self'" in page.headers[
        "content-security-policy"
    ]
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all('src="/static/' in s for s in scripts)
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css"), ("favicon.svg", "svg")]:
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"], name
    assert client.get("/static/../web.py").status_code == 404
    assert client.get("/static/%2e%2e/web.py").status_code == 404
    assert client.get("/static/nope.js").status_code == 404


def test_rendering_keeps_line_numbers_through_front_matter_and_lists() -> None:
    note = render_note("---\ntitle: t\n---\n# 标题\n\n- 一\n- 二\n  - 三\n\n```\ncode\n```\n")
    assert '<h1 data-lines="4-4" data-ln="4" id="h-4">标题</h1>' in note.body
    assert '<p data-lines="6-6" data-ln="6">一</p>' in note.body
    assert '<p data-lines="8-8" data-ln="8">三</p>' in note.body
    assert '<span class="ln" data-lines="11-11" data-ln="11">code</span>' in note.body
    assert [(e.level, e.text, e.line) for e in note.outline] == [(1, "标题", 4)]


def test_highlighting_never_adds_or_drops_lines() -> None:
    code = "\n# comment\nkind: Pod\n\nspec: {}\n"
    lines = highlight_lines(code, "yaml")
    assert len(lines) == 5
    assert lines[0] == "" and "comment" in lines[1] and lines[3] == ""
    assert highlight_lines("<b>x</b>\n", "unknown-language") == ["&lt;b&gt;x&lt;/b&gt;"]
