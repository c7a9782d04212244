"""An `/ask` answer as a Slack message: Block Kit blocks plus the plain-text fallback Slack
shows in notifications (and that the bot later reads back as the thread's history).

Slack's limits, which every message here stays within: 50 blocks, 3,000 characters of
text in a section, 10 elements in a context block, 2,000 characters in a button value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.schemas import (
    AskResponse,
    Citation,
    CommandExampleOut,
    Suggestion,
    YamlExampleOut,
)

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_VALUE = 2000
# Pieces of one long manifest: beyond this the example is cut and linked instead, so a
# single huge manifest cannot bury the answer.
MAX_PIECES_PER_EXAMPLE = 4
# Commands are short; a long shell block is cut sooner, before the YAML examples.
MAX_PIECES_PER_COMMAND = 2
_FENCE = "```"

VOTE_UP = "notesqa_vote_up"
VOTE_DOWN = "notesqa_vote_down"
SHARE = "notesqa_share"
TALLY_BLOCK = "notesqa_tally"
ACTIONS_BLOCK = "notesqa_actions"

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str  # fallback: notifications, screen readers, and the thread history we read back
    blocks: list[Block]


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup; notes and questions are shown as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str | None, label: str) -> str:
    # A label may not contain "|" or ">" inside <url|label>.
    label = escape(label).replace("|", "¦")
    return f"<{url}|{label}>" if url else label


def _absolute(base: str | None, path: str) -> str | None:
    return base.rstrip("/") + path if base else None


def _place(source: str, heading: Sequence[str], lines: tuple[int, int]) -> str:
    path = " › ".join([source, *heading])
    return f"{path}（第 {lines[0]}–{lines[1]} 行）"


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(texts: Sequence[str], block_id: str | None = None) -> Block:
    block: Block = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": t} for t in texts[:MAX_CONTEXT_ELEMENTS]],
    }
    if block_id:
        block["block_id"] = block_id
    return block


def _answer_text(response: AskResponse, base: str | None) -> str:
    """The answer with each [n] marker linked to the cited lines."""
    urls = {c.id: _absolute(base, c.url) for c in response.citations}
    parts = re.split(r"(\[\d+\])", response.answer)
    out = []
    for part in parts:
        marker = re.fullmatch(r"\[(\d+)\]", part)
        url = urls.get(int(marker.group(1))) if marker else None
        out.append(f"<{url}|{part}>" if url else escape(part))
    return "".join(out)


def _citation_line(citation: Citation, base: str | None) -> str:
    label = _place(citation.source, citation.heading, citation.lines)
    return f"*[{citation.id}]* {_link(_absolute(base, citation.url), label)}"


def _suggestion_line(suggestion: Suggestion, base: str | None) -> str:
    label = _place(suggestion.source, suggestion.heading, suggestion.lines)
    return "• " + _link(_absolute(base, suggestion.url), label)


def _marker(citation_id: int, citation: Citation | None, base: str | None) -> str:
    """`[n]`, linked to the cited lines like the answer's markers when there is a URL."""
    url = _absolute(base, citation.url) if citation else None
    return f"<{url}|[{citation_id}]>" if url else f"[{citation_id}]"


def code_pieces(code: str, budget: int = MAX_SECTION_CHARS) -> list[str]:
    """`code` as mrkdwn code blocks of at most `budget` characters each, split between lines
    (a line longer than a whole block is split inside, never inside an escape). The text is
    escaped: Slack reads &, < and > as markup even inside a code block ("<!channel>" in a
    note must not notify anyone), and shows the escapes as the characters."""
    room = budget - 2 * len(_FENCE) - 2  # the fences and their newlines
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    lines: list[str] = []
    for raw in code.rstrip("\n").split("\n"):
        # Slack would read ``` inside a piece as the end of the block.
        line = escape(raw.replace(_FENCE, "ˋˋˋ"))
        while len(line) > room:
            cut = room
            amp = line.rfind("&", max(0, cut - 4), cut)  # "&amp;" is the longest escape
            if amp >= 0 and line.find(";", amp) >= cut:
                cut = amp
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    for line in lines:
        if current and size + len(line) + 1 > room:
            pieces.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        pieces.append("\n".join(current))
    return [f"{_FENCE}\n{p}\n{_FENCE}" for p in pieces]


yaml_pieces = code_pieces  # the name the YAML examples first had


def _code_blocks(
    header: list[Block],
    code: str,
    citation: Citation | None,
    base: str | None,
    room: int,
    max_pieces: int,
    what: str,
) -> list[Block]:
    """`header` and `code` in pieces, within `room` blocks; beyond `max_pieces` pieces (or
    the room) the code is cut and the full `what` (示例, 命令) linked. Nothing when not even
    the header and one piece fit."""
    full_url = _absolute(base, citation.url) if citation else None
    pieces = code_pieces(code)
    fits = max(0, room - len(header))
    cut = len(pieces) > min(fits, max_pieces)
    if cut:
        fits = max(0, min(fits, max_pieces) - 1)  # keep one block for the link
    if fits == 0:
        return []
    blocks = header + [_section(p) for p in pieces[:fits]]
    if cut:
        where = _link(full_url, f"在笔记中查看完整{what}") if full_url else (
            f"完整{what}见引用的笔记"
        )
        blocks.append(_context([f"{what}较长，只显示了前 {fits} 段。{where}"]))
    return blocks if len(blocks) <= room else []


def _example_blocks(
    example: YamlExampleOut, citation: Citation | None, base: str | None, room: int
) -> list[Block]:
    """Header, warnings and the manifest in pieces, within `room` blocks."""
    title = f"*YAML 示例* · {escape(example.kind or 'YAML')}"
    if example.name:
        title += f" `{escape(example.name)}`"
    title += f"  {_marker(example.citation, citation, base)}"
    header = [_section(title)]
    if example.k8s_valid is False and example.problems:
        header.append(_context(["⚠️ " + escape("；".join(example.problems))]))
    return _code_blocks(
        header, example.yaml, citation, base, room, MAX_PIECES_PER_EXAMPLE, "示例"
    )


def _command_blocks(
    command: CommandExampleOut, citation: Citation | None, base: str | None, room: int
) -> list[Block]:
    """"命令 · bash [n]" and the command in pieces, within `room` blocks."""
    title = f"*命令* · {escape(command.language)}  {_marker(command.citation, citation, base)}"
    return _code_blocks(
        [_section(title)], command.text, citation, base, room, MAX_PIECES_PER_COMMAND, "命令"
    )


def vote_buttons(ask_id: str, share: str | None = None) -> Block:
    elements: list[Block] = [
        {
            "type": "button",
            "action_id": VOTE_UP,
            "text": {"type": "plain_text", "text": "👍 有帮助", "emoji": True},
            "value": ask_id,
        },
        {
            "type": "button",
            "action_id": VOTE_DOWN,
            "text": {"type": "plain_text", "text": "👎 没帮助", "emoji": True},
            "value": ask_id,
        },
    ]
    if share is not None:
        elements.insert(0, share_button(share))
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def share_value(response: AskResponse) -> str | None:
    """What the "发到频道" button carries: the answer's id and its question (None when
    that does not fit in a button)."""
    value = json.dumps({"id": response.id, "q": response.question}, ensure_ascii=False)
    return value if len(value) <= MAX_BUTTON_VALUE else None


def share_button(value: str) -> Block:
    return {
        "type": "button",
        "action_id": SHARE,
        "style": "primary",
        "text": {"type": "plain_text", "text": "发到频道", "emoji": True},
        "value": value,
    }


def render(
    response: AskResponse,
    *,
    base_url: str | None,
    asker: str | None = None,
    shareable: bool = False,
) -> Message:
    """The reply to one question. `asker` (a user id) is named when the answer is posted
    for someone else to see; `shareable` adds the "发到频道" button (slash commands)."""
    blocks: list[Block] = []
    lead = ""
    if asker:
        lead = f"<@{asker}> 问：{escape(response.question)}\n"
        blocks.append(_context([lead.strip()]))
    if response.rewritten_query != response.question:
        blocks.append(_context([f"按“{escape(response.rewritten_query)}”查找"]))

    if not response.found:
        text = "笔记中没有找到能回答这个问题的内容。"
        body = f"*{text}*\n可以换个说法，或把相关笔记加入语料后重新索引。"
        if response.suggestions:
            body += "\n\n最接近的章节：\n" + "\n".join(
                _suggestion_line(s, base_url) for s in response.suggestions
            )
        blocks.append(_section(body[:MAX_SECTION_CHARS]))
        fallback = lead + text
    else:
        blocks.append(_section(_answer_text(response, base_url)[:MAX_SECTION_CHARS]))
        lines = [_citation_line(c, base_url) for c in response.citations]
        blocks.append(_context(lines))
        fallback = lead + response.answer

    share = share_value(response) if shareable else None
    actions = []
    if response.id is not None:
        actions.append(vote_buttons(response.id, share))
    elif share is not None:
        actions.append({"type": "actions", "block_id": ACTIONS_BLOCK,
                        "elements": [share_button(share)]})

    # Commands, then YAML examples, below a divider, in the blocks the answer leaves.
    by_id = {c.id: c for c in response.citations}
    code: list[Block] = []

    def room() -> int:
        return MAX_BLOCKS - len(blocks) - len(code) - len(actions) - 1  # 1: divider

    for command in response.command_examples:
        part = _command_blocks(command, by_id.get(command.citation), base_url, room())
        if not part:
            break
        code.extend(part)
    for example in response.yaml_examples:
        part = _example_blocks(example, by_id.get(example.citation), base_url, room())
        if not part:
            break
        code.extend(part)
    if code:
        blocks.append({"type": "divider"})
        blocks.extend(code)
    blocks.extend(actions)
    return Message(text=fallback[:3000], blocks=blocks)


def with_tally(blocks: Sequence[Block], up: int, down: int, voter: str, vote: int) -> list[Block]:
    """`blocks` with the feedback line added or brought up to date."""
    kept = [b for b in blocks if b.get("block_id") != TALLY_BLOCK]
    mark = "👍" if vote > 0 else "👎"
    line = f"感谢反馈（<@{voter}> {mark}）· 👍 {up} · 👎 {down}"
    return [*kept, _context([line], block_id=TALLY_BLOCK)]


def placeholder() -> Message:
    return Message("正在查找…", [_context([":hourglass_flowing_sand: 正在查找笔记…"])])


def notice(text: str) -> Message:
    return Message(text, [_section(escape(text))])
