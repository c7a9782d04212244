"""Answers as Slack messages (Block Kit), within Slack's limits. Fast: no server."""

from __future__ import annotations

import html

from service.schemas import (
    AskResponse,
    Citation,
    CommandExampleOut,
    Scores,
    Suggestion,
    YamlExampleOut,
)
from service.slack.blocks import (
    MAX_BLOCKS,
    MAX_SECTION_CHARS,
    code_pieces,
    escape,
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


def command(text: str, **changes: object) -> CommandExampleOut:
    fields: dict[str, object] = {"language": "bash", "text": text, "citation": 1, **changes}
    return CommandExampleOut.model_validate(fields)


def text_of(blocks: list[dict]) -> str:  # type: ignore[type-arg]
    return "\n".join(block_texts(blocks))


def sections(blocks: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def within_limits(blocks: list[dict]) -> None:  # type: ignore[type-arg]
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(t) <= MAX_SECTION_CHARS for t in sections(blocks))


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


def test_a_command_comes_after_the_answer_as_an_escaped_code_block_with_its_marker() -> None:
    risky = "kubectl get pods -o name > <pods>.txt && echo <!channel>"
    message = render(
        response(command_examples=[command("kubectl delete rs my-rs"), command(risky)],
                 yaml_examples=[example("apiVersion: v1\nkind: ConfigMap\n")]),
        base_url="https://h.example",
    )
    texts = sections(message.blocks)
    marker = "<https://h.example/notes/k8s-notes.md#L180-L181|[1]>"
    header = texts.index(f"*命令* · bash  {marker}")
    assert texts[header + 1] == "```\nkubectl delete rs my-rs\n```"
    # &, < and > are escaped even in a code block: no mention, no link, shown as typed.
    escaped = (
        "```\nkubectl get pods -o name &gt; &lt;pods&gt;.txt &amp;&amp; echo &lt;!channel&gt;\n```"
    )
    assert escaped in texts and "<!channel>" not in text_of(message.blocks)
    # After the answer and its citations, below a divider, before the YAML example.
    types = [b["type"] for b in message.blocks]
    assert types[:3] == ["section", "context", "divider"]
    assert texts[1].startswith("*命令*")
    assert texts.index(f"*YAML 示例* · ConfigMap `big`  {marker}") > texts.index(escaped)
    assert types[-1] == "actions"


def test_a_command_without_a_public_url_cites_plain_text_and_keeps_its_lines() -> None:
    script = "kubectl drain node-1 \\\n  --ignore-daemonsets\nkubectl uncordon node-1\n"
    blocks = render(response(command_examples=[command(script, language="console")]),
                    base_url=None).blocks
    texts = sections(blocks)
    assert "*命令* · console  [1]" in texts
    assert "```\nkubectl drain node-1 \\\n  --ignore-daemonsets\nkubectl uncordon node-1\n```" \
        in texts
    assert "<http" not in text_of(blocks)


def test_fences_in_a_command_cannot_close_its_code_block() -> None:
    texts = sections(render(response(command_examples=[command("echo ```; ls")]),
                            base_url=None).blocks)
    assert "```\necho ˋˋˋ; ls\n```" in texts


def test_a_long_command_is_cut_within_slacks_limits_and_linked() -> None:
    script = "\n".join(f"kubectl label pod web-{i} tier=frontend && echo <{i}>" for i in range(400))
    message = render(response(command_examples=[command(script)] * 3),
                     base_url="https://h.example")
    within_limits(message.blocks)
    text = text_of(message.blocks)
    assert text.count("命令较长，只显示了前 1 段。") == 3
    assert "<https://h.example/notes/k8s-notes.md#L180-L181|在笔记中查看完整命令>" in text
    shown = [t for t in sections(message.blocks) if t.startswith("```")]
    assert len(shown) == 3
    # Cut between lines: the piece is the command's first lines, unescaped.
    assert script.startswith(html.unescape(shown[0].removeprefix("```\n").removesuffix("\n```")))
    assert message.blocks[-1]["type"] == "actions"


def test_a_line_longer_than_a_section_is_split_but_never_inside_an_escape() -> None:
    line = "printf " + "a&b<c>" * 1200  # one 7,207-character line, longer once escaped
    pieces = code_pieces(line)
    assert len(pieces) > 2
    assert all(len(p) <= MAX_SECTION_CHARS for p in pieces)
    bodies = [p.removeprefix("```\n").removesuffix("\n```") for p in pieces]
    assert all(escape(html.unescape(body)) == body for body in bodies)  # every escape whole
    assert html.unescape("".join(bodies)) == line


def test_commands_and_manifests_together_stay_within_the_block_limit() -> None:
    long_yaml = "\n".join(f"  key{i}: " + "y" * 90 for i in range(600))
    long_command = "\n".join(f"kubectl get pod p{i} " + "-o wide " * 10 for i in range(200))
    message = render(
        response(command_examples=[command(long_command)] * 3,
                 yaml_examples=[example(long_yaml)] * 12),
        base_url="https://h.example",
    )
    within_limits(message.blocks)
    texts = sections(message.blocks)
    assert sum(t.startswith("*命令*") for t in texts) == 3  # commands first, all three
    assert any(t.startswith("*YAML 示例*") for t in texts)
    assert message.blocks[-1]["type"] == "actions"


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
