"""The help-desk page in a real browser: headless Chromium (Debian's package, driven by
Playwright) against a real `notesqa serve` with the real model.

Screenshots of the main states go to tests/artifacts/web/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import NOTES, ROOT
from tests.servers import notesqa_server

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
Browser = playwright_api.Browser
Page = playwright_api.Page
Route = playwright_api.Route
expect = playwright_api.expect

ARTIFACTS = ROOT / "tests" / "artifacts" / "web"

# A note written to attack the page: raw HTML, an inline handler and a javascript: link, plus
# a manifest whose apiVersion Kubernetes removed in 1.22.
HOSTILE_NOTE = """# 值班交接

值班交接时，要在工单系统里填写交接记录。<script>window.__pwned = "script"</script>

<img src=x onerror="window.__pwned = 'img'">

模板见 [这里](javascript:window.__pwned='link')，另见 [Secret 笔记](../k8s-notes.md#L179-L181)。

<a href="javascript:window.__pwned='raw-link'">原始链接</a>

## 旧版 Ingress 示例

```yaml
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: legacy-ingress
spec:
  backend:
    serviceName: web
    servicePort: 80
```
"""


def chromium_path() -> str | None:
    return os.environ.get("NOTESQA_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Iterator[str]:
    work = tmp_path_factory.mktemp("web")
    corpus = work / "corpus"
    (corpus / "ops").mkdir(parents=True)
    shutil.copy(NOTES, corpus / NOTES.name)
    (corpus / "ops" / "handover.md").write_text(HOSTILE_NOTE, "utf-8")
    with notesqa_server(work, corpus=corpus) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        message = "Chromium not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


def _open_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A page on `base_url` that fails the test on any JavaScript error."""
    context = browser.new_context(
        base_url=base_url, viewport={"width": 1280, "height": 900}, locale="zh-CN"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    yield from _open_page(browser, server)


def shot(page: Page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def ask(page: Page, question: str) -> dict[str, Any]:
    """Type `question`, press Enter, wait for the answer; returns the /ask response body."""
    with page.expect_response("**/ask") as response:
        page.locator("#question").fill(question)
        page.locator("#question").press("Enter")
    body: dict[str, Any] = response.value.json()
    expect(page.locator("article.turn").last.locator(".answer")).not_to_have_attribute(
        "data-state", "loading"
    )
    return body


def test_ask_and_see_the_answer_with_its_citations(page: Page) -> None:
    page.goto("/")
    expect(page.locator("#welcome h1")).to_have_text("有什么可以帮你？")
    # Record the loading state as it happens: the answer may come back within milliseconds.
    page.evaluate(
        """() => { window.__seen = {loading: false, disabled: false};
        new MutationObserver(() => {
          if (document.querySelector('[data-state=loading]')) window.__seen.loading = true;
          if (document.getElementById('send').disabled) window.__seen.disabled = true;
        }).observe(document.body, {subtree: true, childList: true, attributes: true}); }"""
    )

    body = ask(page, "数据库密码应该放在哪里？")

    assert page.evaluate("window.__seen") == {"loading": True, "disabled": True}
    answer = page.locator(".answer[data-state=found]")
    expect(answer.locator(".answer-text")).to_contain_text("敏感信息")
    markers = answer.locator("a.marker")
    assert markers.count() >= 1
    first = body["citations"][0]
    expect(markers.first).to_have_attribute("href", first["url"])
    card = answer.locator("a.citation").first
    expect(card).to_have_attribute("href", first["url"])
    expect(card.locator(".cite-file")).to_have_text(first["source"])
    start, end = first["lines"]
    expect(card.locator(".cite-lines")).to_have_text(f"第 {start}–{end} 行")
    expect(card.locator(".cite-heading")).to_have_text(" › ".join(first["heading"]))
    for term in first["matched_terms"]:
        expect(card.locator(".term", has_text=term).first).to_be_visible()
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#welcome")).to_be_hidden()
    shot(page, "answer")


def test_a_citation_opens_the_note_at_the_highlighted_lines(page: Page) -> None:
    page.goto("/")
    body = ask(page, "数据库密码应该放在哪里？")
    citation = body["citations"][0]
    start, end = citation["lines"]

    with page.context.expect_page() as opened:
        page.locator(".answer a.marker").first.click()
    note = opened.value
    note.wait_for_load_state()

    assert note.url.endswith(citation["url"])
    expect(note.locator("#cite-label")).to_have_text(f"引用的是第 {start}–{end} 行")
    cited = note.locator(".markdown .cited")
    assert cited.count() >= 1
    lines = NOTES.read_text("utf-8").split("\n")
    expect(cited.first).to_contain_text(lines[start - 1].split("**")[-1][:8])
    expect(cited.first).to_be_in_viewport()
    # The outline lists the note's headings.
    expect(note.locator(".outline a", has_text="Secret").first).to_be_visible()
    shot(note, "note-highlighted")

    # A citation card opens the same place.
    with page.context.expect_page() as opened_card:
        page.locator(".answer a.citation").first.click()
    assert opened_card.value.url.endswith(citation["url"])


def test_a_yaml_example_is_highlighted_warned_about_and_copied(page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/")

    body = ask(page, "值班交接的 Ingress 示例")

    legacy = next(ex for ex in body["yaml_examples"] if ex["name"] == "legacy-ingress")
    assert legacy["k8s_valid"] is False
    card = page.locator(".yaml-card", has=page.locator(".yaml-name", has_text="legacy-ingress"))
    expect(card.locator(".yaml-warning")).to_contain_text("1.22")
    expect(card.locator(".yaml-warning")).to_contain_text("extensions/v1beta1")
    expect(card.locator(".y-key", has_text="apiVersion")).to_be_visible()
    expect(card.locator("pre")).to_have_text(legacy["yaml"].rstrip("\n") + "\n")

    card.locator("button.copy").click()

    expect(card.locator("button.copy")).to_have_text("已复制 ✓")
    assert page.evaluate("navigator.clipboard.readText()") == legacy["yaml"]
    shot(page, "yaml-example")


def test_a_follow_up_carries_the_conversation_until_new_chat(page: Page) -> None:
    page.goto("/")
    ask(page, "StatefulSet 适合什么场景？")

    with page.expect_request("**/ask") as sent:
        body = ask(page, "那 DaemonSet 呢？")
    request = json.loads(sent.value.post_data or "{}")

    assert request["client"] == "web"
    assert [t["role"] for t in request["history"]] == ["user", "assistant"]
    assert request["history"][0]["content"] == "StatefulSet 适合什么场景？"
    assert body["rewritten_query"] != "那 DaemonSet 呢？"
    rewritten = page.locator("article.turn").last.locator(".rewritten q")
    expect(rewritten).to_have_text(body["rewritten_query"])
    expect(rewritten).to_contain_text("DaemonSet")
    # The first question's answer shows no rewrite: it was searched as typed.
    expect(page.locator("article.turn").first.locator(".rewritten")).to_have_count(0)
    # A reload keeps the conversation; 新对话 clears it and the next question stands alone.
    page.reload()
    expect(page.locator("article.turn")).to_have_count(2)
    page.get_by_role("button", name="新对话").click()
    expect(page.locator("article.turn")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()
    with page.expect_request("**/ask") as fresh:
        ask(page, "Pod 是什么？")
    assert json.loads(fresh.value.post_data or "{}")["history"] == []
    shot(page, "follow-up")


def test_enter_sends_and_shift_enter_makes_a_new_line(page: Page) -> None:
    page.goto("/")
    box = page.locator("#question")
    box.click()
    box.type("Pod 是什么？")
    box.press("Shift+Enter")
    box.type("请简单说明")
    assert box.input_value() == "Pod 是什么？\n请简单说明"
    expect(page.locator("article.turn")).to_have_count(0)
    with page.expect_response("**/ask"):
        box.press("Enter")
    expect(page.locator(".bubble")).to_have_text("Pod 是什么？\n请简单说明")
    assert box.input_value() == ""


def test_the_not_found_state_offers_the_closest_sections(page: Page) -> None:
    page.goto("/")
    body = ask(page, "Kafka 分区重平衡是怎么触发的？")

    assert body["found"] is False
    card = page.locator(".answer[data-state=not-found]")
    expect(card.locator(".not-found-title")).to_have_text("笔记中没有找到")
    expect(card.locator(".answer-text")).to_have_text(body["answer"])
    links = card.locator("a.suggestion")
    expect(links).to_have_count(len(body["suggestions"]))
    expect(links.first).to_have_attribute("href", body["suggestions"][0]["url"])
    expect(card.locator("a.marker, a.citation")).to_have_count(0)
    shot(page, "not-found")


def test_errors_are_shown_in_words(page: Page) -> None:
    page.goto("/")

    # The server refuses a question over 2,000 characters (422): its message is shown.
    page.locator("#question").fill("长" * 2001)
    with page.expect_response("**/ask") as refused:
        page.locator("#question").press("Enter")
    assert refused.value.status == 422
    error = page.locator(".answer[data-state=error]").last
    expect(error).to_contain_text("问题太长：2001 个字符")
    expect(page.locator("#question")).to_have_value("长" * 2001)  # back in the box to fix

    # The index is still loading (503).
    def loading(route: Route) -> None:
        route.fulfill(
            status=503, content_type="application/json",
            body=json.dumps({"message": "服务尚未就绪：索引尚未加载"}),
        )

    page.route("**/ask", loading)
    page.locator("#question").fill("Pod 是什么？")
    page.locator("#question").press("Enter")
    error = page.locator("article.turn").last.locator(".answer[data-state=error]")
    expect(error.locator(".error-title")).to_have_text("服务正在启动")
    expect(error).to_contain_text("服务尚未就绪：索引尚未加载")

    # The network is down.
    page.unroute("**/ask")
    page.route("**/ask", lambda route: route.abort("internetdisconnected"))
    page.locator("#question").fill("Service 是什么？")
    page.locator("#question").press("Enter")
    error = page.locator("article.turn").last.locator(".answer[data-state=error]")
    expect(error.locator(".error-title")).to_have_text("连接失败")
    expect(error).to_contain_text("无法连接到服务")
    shot(page, "error")

    # Back online, 重试 asks again and the error is replaced by the answer.
    page.unroute("**/ask")
    error.get_by_role("button", name="重试").click()
    expect(page.locator("article.turn").last.locator(".answer[data-state=found]")).to_contain_text(
        "Service"
    )


def test_a_hostile_note_and_question_stay_inert(page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto("/notes/ops/handover.md")
    article = page.locator("article.markdown")
    expect(article).to_contain_text('<script>window.__pwned = "script"</script>')
    expect(article).to_contain_text("<img src=x onerror=")
    assert article.locator("script, img, iframe").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    # A relative link to another note still works.
    expect(article.get_by_role("link", name="Secret 笔记")).to_have_attribute(
        "href", "../k8s-notes.md#L179-L181"
    )
    article.get_by_text("这里").first.click()  # the defused javascript: link is plain text
    shot(page, "hostile-note")

    page.goto("/")
    ask(page, '<img src=x onerror="window.__pwned=\'question\'"> 交接记录写在哪里？')
    expect(page.locator(".bubble").first).to_contain_text("<img src=x onerror=")
    ask(page, "值班交接时要填写什么？")  # answered from the hostile note's text
    answer = page.locator(".answer").last
    expect(answer.locator(".answer-text")).to_contain_text("交接记录")
    assert page.locator("#turns img, #turns script").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []


def test_the_layout_holds_at_375_px(browser: Browser, server: str) -> None:
    context = browser.new_context(base_url=server, viewport={"width": 375, "height": 812})
    page = context.new_page()
    try:
        page.goto("/")
        shot(page, "phone-welcome")
        ask(page, "给我一个 Deployment 的 YAML")
        expect(page.locator(".yaml-card").first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways: {width}px wide"
        composer = page.locator("#ask-form").bounding_box()
        assert composer is not None and composer["x"] >= 0
        assert composer["x"] + composer["width"] <= 375
        expect(page.locator("#send")).to_be_in_viewport()
        shot(page, "phone-answer")

        page.goto("/notes/k8s-notes.md#L250-L268")
        expect(page.locator(".cited").first).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        shot(page, "phone-note")
    finally:
        context.close()


def test_a_vote_shows_up_in_the_statistics(page: Page, server: str) -> None:
    page.goto("/")
    ask(page, "Ingress Controller 是做什么的？")
    turn = page.locator("article.turn").last

    with page.expect_response("**/feedback") as voted:
        turn.get_by_role("button", name="没帮助").click()

    assert voted.value.json()["down"] == 1
    expect(turn.locator(".vote-status")).to_contain_text("已记录")
    expect(turn.get_by_role("button", name="没帮助")).to_have_attribute("aria-pressed", "true")

    page.goto("/admin/stats")
    downvoted = page.locator("#downvoted")
    expect(downvoted).to_contain_text("Ingress Controller 是做什么的？")
    expect(downvoted.locator(".count.down").first).to_contain_text("👎 1")
    expect(page.locator("#per-day tbody tr").first.locator("td").nth(9)).not_to_have_text("0")
    asked = int(page.locator(".tile-value").first.inner_text())
    assert asked == httpx.get(f"{server}/admin/stats?format=json").json()["totals"]["asked"]
    shot(page, "stats", full_page=True)


def test_no_vote_buttons_when_nothing_is_kept(page: Page) -> None:
    # With NOTESQA_RETENTION_DAYS=0 the API answers with "id": null.
    def without_id(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["id"] = None
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/ask", without_id)
    page.goto("/")
    ask(page, "Pod 是什么？")
    expect(page.locator(".answer[data-state=found]")).to_be_visible()
    expect(page.locator(".vote")).to_have_count(0)


# A section whose lead-in line introduces a shell block: "how do I …, which command?" gets the
# command under the answer.
COMMAND_NOTE = """# ReplicaSet 运维

## 删除 ReplicaSet
删除 ReplicaSet 及其 Pod 的命令如下：

```bash
kubectl delete rs my-rs
```
"""
COMMAND_QUESTION = "怎么删除 ReplicaSet？用什么命令？"


@pytest.fixture(scope="module")
def command_server(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[str]:
    work = tmp_path_factory.mktemp("web-commands")
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / "replicaset.md").write_text(COMMAND_NOTE, "utf-8")
    with notesqa_server(work, corpus=corpus) as base:
        yield base


@pytest.fixture
def command_page(browser: Browser, command_server: str) -> Iterator[Page]:
    yield from _open_page(browser, command_server)


def test_a_command_is_shown_under_the_answer_with_its_citation(
    command_page: Page, command_server: str
) -> None:
    # The API first: the question gets the section's command, citing the section.
    api = httpx.post(f"{command_server}/ask", json={"question": COMMAND_QUESTION}, timeout=60)
    assert api.status_code == 200
    examples = api.json()["command_examples"]
    assert [(ex["language"], ex["text"]) for ex in examples] == [
        ("bash", "kubectl delete rs my-rs")
    ], api.json()

    page = command_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/")
    body = ask(page, COMMAND_QUESTION)

    answer = page.locator(".answer[data-state=found]")
    command = body["command_examples"][0]
    citation = next(c for c in body["citations"] if c["id"] == command["citation"])
    assert citation["source"] == "replicaset.md"
    box = answer.locator(".command-examples")
    expect(box.locator("h3")).to_have_text("命令")
    card = box.locator(".command-card")
    expect(card).to_have_count(1)
    expect(card.locator(".command-lang")).to_have_text("bash")
    expect(card.locator("pre")).to_have_text("kubectl delete rs my-rs")
    source = card.locator("a.command-source")
    expect(source).to_have_text(f"出处 [{command['citation']}]")
    expect(source).to_have_attribute("href", citation["url"])
    start, end = citation["lines"]
    lines = COMMAND_NOTE.split("\n")[start - 1 : end]
    assert "kubectl delete rs my-rs" in lines  # the cited lines hold the command
    # Below the answer and its citations, above any YAML example.
    assert answer.evaluate(
        """a => { const kids = [...a.children].map(e => e.className);
                 return kids.indexOf('command-examples') > kids.indexOf('citations'); }"""
    )

    card.get_by_role("button", name="复制命令：kubectl delete rs my-rs").click()
    expect(card.locator("button.copy")).to_have_text("已复制 ✓")
    assert page.evaluate("navigator.clipboard.readText()") == "kubectl delete rs my-rs"
    shot(page, "command-example")

    # The citation opens the note at the command's lines.
    with page.context.expect_page() as opened:
        source.click()
    note = opened.value
    note.wait_for_load_state()
    cited = note.locator(".markdown .cited", has_text="kubectl delete rs my-rs")
    expect(cited.first).to_be_visible()


def test_a_command_is_shown_as_text(command_page: Page) -> None:
    # A command is a note's text: markup in it stays text, even in several lines.
    hostile = 'kubectl get pods <img src=x onerror="window.__pwned=1">\necho "<b>done</b>" && ls'

    def with_hostile_command(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["command_examples"] = [
            {"language": "<i>sh</i>", "text": hostile, "citation": 1},
            {"language": "bash", "text": "kubectl get rs", "citation": 99},  # cites nothing
        ]
        route.fulfill(response=response, body=json.dumps(body))

    page = command_page
    page.route("**/ask", with_hostile_command)
    page.goto("/")
    ask(page, COMMAND_QUESTION)

    cards = page.locator(".command-card")
    expect(cards).to_have_count(2)
    expect(cards.first.locator("pre")).to_have_text(hostile)
    expect(cards.first.locator(".command-lang")).to_have_text("<i>sh</i>")
    expect(cards.last.locator("a.command-source")).to_have_count(0)
    assert page.locator("#turns img, #turns b, #turns i").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[str]:
    work = tmp_path_factory.mktemp("web-keyed")
    with notesqa_server(work, env={"NOTESQA_API_KEYS": '["desk-key-1"]'}) as base:
        yield base


def test_with_api_keys_the_page_asks_for_one_and_then_works(
    browser: Browser, keyed_server: str
) -> None:
    context = browser.new_context(base_url=keyed_server, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/")
        page.locator("#question").fill("数据库密码应该放在哪里？")
        page.locator("#question").press("Enter")
        dialog = page.locator("dialog.key-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("h2")).to_have_text("需要 API 密钥")
        shot(page, "api-key")
        dialog.locator("#api-key").fill("wrong-key")
        dialog.locator("button[type=submit]").click()
        expect(dialog.locator("p")).to_have_text("密钥不对，请重新输入。")
        with page.expect_response("**/ask") as answered:
            dialog.locator("#api-key").fill("desk-key-1")
            dialog.locator("button[type=submit]").click()
        assert answered.value.status == 200
        expect(page.locator(".answer[data-state=found] .answer-text")).to_contain_text("敏感信息")
        # The note view opens as a link: the page's cookie carries the key.
        with page.context.expect_page() as opened:
            page.locator(".answer a.marker").first.click()
        note = opened.value
        note.wait_for_load_state()
        expect(note.locator("#cite-label")).to_contain_text("引用的是第")
        # Without the key, the API stays closed.
        assert httpx.post(f"{keyed_server}/ask", json={"question": "Pod"}).status_code == 401
    finally:
        context.close()
