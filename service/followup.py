"""Turn a follow-up question into a standalone query, using the conversation so far.

Rules, no language model: a pronoun ("它", "this") is replaced by the object the previous
turns were about; "那 X 呢？" re-asks the previous question about X; a question naming no
object at all inherits the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from service.glossary import Glossary

# What a follow-up is resolved from: the last MAX_TURNS turns, each read up to
# MAX_TURN_CHARS characters. The API refuses longer histories (service/schemas.py); other
# callers (the Slack bot reads whole threads back) are cut here, so a rewrite's cost and the
# rewritten query's length stay bounded whatever the conversation.
MAX_TURNS = 20
MAX_TURN_CHARS = 2000

_PRONOUN = re.compile(
    r"(它们|它的|它|这个对象|这个资源|这个|那个|该对象|该资源|前者|后者|上面的|上述"
    r"|\bthem\b|\bit\b|\bits\b|\bthis\b|\bthat\b)",
    re.IGNORECASE,
)
_WHAT_ABOUT = re.compile(
    r"^\s*(?:那|那么|还有|and|what about|how about)\s*(.+?)\s*(?:呢|怎么样|如何)?\s*[？?]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


def _names(glossary: Glossary, text: str) -> list[str]:
    return [m.term.name for m in glossary.mentions(text) if m.strong and not m.term.word]


def rewrite(question: str, history: Sequence[Turn], glossary: Glossary) -> str:
    """The standalone form of `question` (unchanged when it already stands alone)."""
    history = [Turn(t.role, t.content[:MAX_TURN_CHARS]) for t in history[-MAX_TURNS:]]
    user_turns = [t.content for t in history if t.role == "user" and t.content.strip()]
    if not user_turns:
        return question
    previous = user_turns[-1]
    prev_names = _names(glossary, previous)
    if not prev_names:
        # Fall back to any object named earlier in the conversation.
        for turn in reversed(history):
            prev_names = _names(glossary, turn.content)
            if prev_names:
                break
    if not prev_names:
        return question
    subject = prev_names[0]
    own_names = _names(glossary, question)

    what_about = _WHAT_ABOUT.match(question)
    if what_about and own_names and not _PRONOUN.search(question):
        # "那 DaemonSet 呢？": the previous question, asked about the new object.
        new_subject = own_names[0]
        rewritten = previous
        for name in prev_names:
            rewritten = _replace_mention(glossary, rewritten, name, new_subject)
        return rewritten if rewritten != previous else f"{new_subject} {previous}"

    if _PRONOUN.search(question):
        def name_it(match: re.Match[str]) -> str:
            # "它的 YAML" -> "Service 的 YAML": keep the possessive.
            return f" {subject} 的 " if match.group(0).endswith("的") else f" {subject} "

        return _tidy(_PRONOUN.sub(name_it, question, count=1))

    if not own_names:
        return f"{subject} {question}"
    return question


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([？?，,。.!！])", r"\1", text)


def _replace_mention(glossary: Glossary, text: str, name: str, new: str) -> str:
    term = glossary.by_name.get(name.lower())
    if term is None:
        return text
    for alias in sorted({term.name, *term.aliases}, key=len, reverse=True):
        pattern = re.compile(re.escape(alias), re.IGNORECASE)
        if pattern.search(text):
            return pattern.sub(new, text, count=1)
    return text
