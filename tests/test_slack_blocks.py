"""Answers as Slack messages (Block Kit), within Slack's limits. Fast: no server."""

from __future__ import annotations

from service.schemas import AskResponse, Citation, Scores, Suggestion, YamlExampleOut
from service.slack.blocks import (
    MAX_BLOCKS,
    MAX_SECTION_CHARS,
    render,
    with_tally,
    yaml_pieces,
)
from service.slack.bot import EventLedger, question_of
from tests.slack_fake import block_texts


def citation(cid: int = 1) -> Citation:
    return Citation(
        id=cid, source="k8s-notes.md", heading=["k8s中常用的对象", "Secret"], lines=(180, 181),
        url="/notes/k8s-notes.md#L180-L181", score=1.0, scores=Scores(bm25=1, dense=1, fused=1),
    )


def response(**changes: object) -> AskResponse:
    base = AskResponse(
        id="abc", question="Secret 存什么？", rewritten_query="Secret 存什么？", found=True,
        answer="定义：Secret 存储敏感信息 <b>如密码</b> & 令牌。[1]", confidence=0.9,
        snippets=[], citations=[citation()], yaml_examples=[], timings_ms={},
    )
    return base.model_copy(update=changes)


def example(yaml: str, **changes: object) -> YamlExampleOut:
    fields: dict[str, object] = {"kind": "ConfigMap", "api_version": "v1", "name": "big",
                                 "yaml": yaml, "valid": True, "citation": 1, **changes}
    return YamlExampleOut.model_validate(fields)


def text_of(blocks: list[dict]) -> str:  # type: ignore[type-arg]
    return "\n".join(block_texts(blocks))


def test_markers_link_to_the_cited_lines_and_note_text_is_escaped() -> None:
    message = render(response(), base_url="https://help.example.com")
    text = text_of(message.blocks)
    assert "<https://help.example.com/notes/k8s-notes.md#L180-L181|[1]>" in text
    assert "&lt;b&gt;如密码&lt;/b&gt; &amp; 令牌" in text  # shown as text, not markup
    assert "k8s-notes.md › k8s中常用的对象 › Secret（第 180–181 行）" in text
    assert message.text.startswith("定义：Secret")  # the notification fallback


def test_without_a_public_url_citations_are_plain_text() -> None:
    text = text_of(render(response(), base_url=None).blocks)
    assert "<http" not in text and "[1]" in text


def test_a_manifest_is_split_between_lines_within_the_section_limit() -> None:
    yaml = "\n".join(f"  key{i}: value-{i}-" + "x" * 60 for i in range(100))  # ~7,800 chars
    pieces = yaml_pieces(yaml)
    assert len(pieces) == 3
    assert all(len(p) <= MAX_SECTION_CHARS for p in pieces)
    assert "\n".join(p[4:-4] for p in pieces) == yaml
    message = render(response(yaml_examples=[example(yaml)]), base_url=None)
    assert "示例较长" not in text_of(message.blocks)


def test_a_huge_manifest_is_cut_cleanly_and_linked() -> None:
    yaml = "\n".join(f"  key{i}: " + "y" * 90 for i in range(600))  # ~60,000 chars
    message = render(response(yaml_examples=[example(yaml)] * 6), base_url="https://h.example")
    assert len(message.blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS
               for b in message.blocks if b["type"] == "section")
    assert "示例较长，只显示了前 3 段。<https://h.example/notes/k8s-notes.md#L180-L181|" \
        in text_of(message.blocks)
    assert message.blocks[-1]["type"] == "actions"  # the vote buttons survive the cut


def test_a_manifest_that_fails_the_schema_check_says_why() -> None:
    bad = example("apiVersion: extensions/v1beta1\nkind: Ingress\n", kind="Ingress",
                  k8s_valid=False, problems=["extensions/v1beta1 在 1.22 中已移除"])
    text = text_of(render(response(yaml_examples=[bad]), base_url=None).blocks)
    assert "⚠️ extensions/v1beta1 在 1.22 中已移除" in text


def test_not_found_says_so_and_offers_the_closest_sections() -> None:
    declined = response(
        found=False, answer="笔记中没有找到", citations=[],
        suggestions=[Suggestion(source="k8s-notes.md", heading=["Service 对象"], lines=(70, 80),
                                url="/notes/k8s-notes.md#L70-L80")],
    )
    text = text_of(render(declined, base_url="https://h.example").blocks)
    assert "笔记中没有找到能回答这个问题的内容" in text
    assert "最接近的章节" in text and "<https://h.example/notes/k8s-notes.md#L70-L80|" in text


def test_no_vote_buttons_when_nothing_is_stored() -> None:
    blocks = render(response(id=None), base_url=None).blocks
    assert not [b for b in blocks if b["type"] == "actions"]


def test_the_tally_line_is_replaced_not_repeated() -> None:
    blocks = render(response(), base_url=None).blocks
    once = with_tally(blocks, 1, 0, "U1", 1)
    twice = with_tally(once, 1, 1, "U2", -1)
    assert len(twice) == len(once) == len(blocks) + 1
    assert "👍 1 · 👎 1" in text_of(twice) and "👍 1 · 👎 0" not in text_of(twice)


def test_the_rewritten_follow_up_is_shown() -> None:
    text = text_of(render(response(question="那它呢？"), base_url=None).blocks)
    assert "按“Secret 存什么？”查找" in text


def test_mentions_are_not_part_of_the_question() -> None:
    assert question_of("<@U0BOT> Pod 是什么？ <@U0ALICE|alice>") == "Pod 是什么？"


def test_the_ledger_takes_each_event_once_and_forgets_old_ones() -> None:
    ledger = EventLedger(ttl_s=3600, max_size=2)
    assert ledger.claim("a") and not ledger.claim("a")
    assert ledger.claim("b") and ledger.claim("c")  # "a" falls out: the ledger is bounded
    assert ledger.claim("a")
