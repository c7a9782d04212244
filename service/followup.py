"""Turn a follow-up question into a standalone query, using the conversation so far.

Rules, no language model. The user's turns are resolved in order, each from the standalone
forms of the turns before it, so a third turn's "它" still means the object the first named.

- A reference is replaced by what it stands for, and nothing else in the question changes (its
  request, "YAML", "示例", "用什么命令", stays): 它/it/its/this/这个对象/该资源 by the object
  the conversation is about; 它们/they/them by all the objects the previous turn named;
  前者/后者/前一个/后一个/the former/the latter by the first or last of the objects last
  compared. A dummy "it" ("is it possible to …") and a determiner before a noun that is not an
  object ("这个字段", "this error") are not references.
- An elliptical follow-up ("那 X 呢？", "X 呢？", "还有 X 吗？", "What about X?", "And X?")
  that names only objects re-asks the previous question about them; one that names something
  else asks for that: "它的 YAML 呢？" → "Deployment 的 YAML", "还有 Service 的 YAML 吗？" →
  "Service 的 YAML".
- A question naming no object and no reference is about the previous subject:
  "用什么命令？" → "Deployment 用什么命令？".
- A question that names its own object and has no reference, and a first turn, stay as they are.

Objects come from the user's turns. An assistant turn is read only when a reference has no
antecedent there: answers mention neighbouring objects, so they are a last resort.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from service.glossary import Glossary, Term
from service.query import read_asks

# What a follow-up is resolved from: the last MAX_TURNS turns, each read up to
# MAX_TURN_CHARS characters. The API refuses longer histories (service/schemas.py); other
# callers (the Slack bot reads whole threads back) are cut here, so a rewrite's cost and the
# rewritten query's length stay bounded whatever the conversation.
MAX_TURNS = 20
MAX_TURN_CHARS = 2000
# At most this many objects stand for "它们" or an inherited subject, and at most this many
# references are replaced in one turn, so a rewrite of "它它它…" stays about one turn long.
MAX_SUBJECTS = 3
MAX_REFERENCES = 4


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class Reference:
    text: str  # as written in the question: "后者", "its", "这个对象"
    names: tuple[str, ...]  # the objects it stands for


@dataclass(frozen=True)
class Resolution:
    query: str  # the standalone question (the question itself when it already stands alone)
    subjects: tuple[str, ...]  # the objects the query is about, in reading order
    references: tuple[Reference, ...] = ()  # the references that were replaced


Role = Literal["one", "all", "first", "last"]


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class _Ref:
    start: int
    end: int
    role: Role
    suffix: str = ""  # "'s" for "its", "的" for "上面的"


# A piece of a replacement, and the object it names (None for joiners like " 和 ").
_Part = tuple[str, str | None]
_Edit = tuple[int, int, list[_Part]]


@dataclass(frozen=True)
class _Context:
    """What the conversation so far offers a new turn."""

    question: str | None = None  # the previous user turn, standalone
    spans: tuple[_Span, ...] = ()  # where its objects are in it
    subjects: tuple[str, ...] = ()  # the objects of the latest user turn that had any
    compared: tuple[str, ...] = ()  # the latest two or more objects named together

    def after(self, resolution: Resolution, spans: tuple[_Span, ...]) -> _Context:
        subjects = resolution.subjects[:MAX_SUBJECTS]
        if not subjects:
            return _Context(resolution.query, spans, self.subjects, self.compared)
        if len(subjects) >= 2:
            compared = subjects
        else:
            # "后者有哪几种类型？" still continues the comparison; a new object ends it.
            compared = self.compared if set(subjects) <= set(self.compared) else ()
        return _Context(resolution.query, spans, subjects, compared)


def resolve(question: str, history: Sequence[Turn], glossary: Glossary) -> Resolution:
    """The standalone form of `question`, what it is about and which references were read."""
    turns = [Turn(t.role, t.content[:MAX_TURN_CHARS]) for t in history[-MAX_TURNS:]]
    context = _Context()
    answers: list[str] = []
    answer_names: dict[int, tuple[str, ...]] = {}

    def from_answers() -> tuple[str, ...]:
        # Each answer is scanned at most once, newest first, and only when asked.
        for i in range(len(answers) - 1, -1, -1):
            if i not in answer_names:
                answer_names[i] = _unique(s.name for s in _objects(glossary, answers[i]))
            if answer_names[i]:
                return answer_names[i][:MAX_SUBJECTS]
        return ()

    for turn in turns:
        if turn.role != "user":
            answers.append(turn.content)
        elif turn.content.strip():
            resolution, spans = _resolve_turn(turn.content, context, glossary, from_answers)
            context = context.after(resolution, spans)
    return _resolve_turn(question, context, glossary, from_answers)[0]


def rewrite(question: str, history: Sequence[Turn], glossary: Glossary) -> str:
    """The standalone form of `question` (unchanged when it already stands alone)."""
    return resolve(question, history, glossary).query


# --- one turn ---------------------------------------------------------------------------


def _resolve_turn(
    question: str,
    context: _Context,
    glossary: Glossary,
    from_answers: Callable[[], tuple[str, ...]],
) -> tuple[Resolution, tuple[_Span, ...]]:
    own = _objects(glossary, question)
    refs = _references(question, own)
    unchanged = (Resolution(question, _unique(s.name for s in own)), tuple(own))

    def antecedent(role: Role) -> tuple[str, ...]:
        subjects = context.subjects or from_answers()
        if not subjects:
            return ()
        if role == "one":
            return subjects[:1]
        if role == "all":
            return subjects
        group = context.compared or subjects
        return group[:1] if role == "first" else group[-1:]

    resolved = [(ref, antecedent(ref.role)) for ref in refs]
    resolved = [(ref, names) for ref, names in resolved if names]
    references = tuple(Reference(question[r.start:r.end], names) for r, names in resolved)
    chinese = _is_chinese(question)

    ellipsis = _ellipsis(question, own, refs)
    if ellipsis is not None:
        start, end = ellipsis
        inside = [(r, n) for r, n in resolved if start <= r.start < end]
        if len(inside) < sum(1 for r in refs if start <= r.start < end):
            return unchanged  # "它的 YAML 呢？" with nothing "它" could be
        named = [s for s in own if start <= s.start < end]
        if not _remainder(question, start, end, [*named, *(r for r, _ in inside)]):
            # Only objects ("那 DaemonSet 呢？"): the previous question, asked about them.
            if context.question is None:
                return unchanged
            by_position = sorted(
                [(s.start, (s.name,)) for s in named] + [(r.start, n) for r, n in inside]
            )
            names = _unique(name for _, group in by_position for name in group)
            query, spans = _reask(context.question, context.spans, names)
            return _result(query, spans, references)
        # A request ("它的 YAML 呢？", "还有 Service 的 YAML 吗？"): ask for just that.
        phrase = question[start:end]
        edits = [(r.start - start, r.end - start, _parts(n, chinese, r.suffix)) for r, n in inside]
        kept = [_Span(s.start - start, s.end - start, s.name) for s in named]
        query, spans = _splice(phrase, edits, kept)
        if not spans and context.question is not None and not read_asks(phrase) and not (
            _REQUEST_WORDS.search(phrase)
        ):
            # A name the glossary does not know ("那 kube-dns 的呢？", "EXPOSE 呢？"): still
            # an object, so the previous question is asked about it. Plain words ("删除",
            # "the lifecycle") are more often something of the current subject.
            name = _FILLER.sub(" ", phrase).strip()
            if _IDENTIFIER.fullmatch(name):
                query, spans = _reask(context.question, context.spans, (name,))
                return _result(query, spans, references)
        if not spans:
            if not context.subjects:
                return unchanged
            if chinese:
                edit: _Edit = (0, 0, [*_parts(context.subjects, True), (" 的", None)])
            else:
                edit = (len(query), len(query), [(" of ", None), *_parts(context.subjects, False)])
            query, spans = _splice(query, [edit], [])
        return _result(query, spans, references)

    if resolved:
        edits = [(r.start, r.end, _parts(n, chinese, r.suffix)) for r, n in resolved]
        kept = [s for s in own if not any(r.start < s.end and s.start < r.end for r, _ in resolved)]
        query, spans = _splice(question, edits, kept)
        return _result(query, spans, references)

    if not own and not refs and context.subjects:
        # "用什么命令？": a request about the previous subject.
        marker = _MARKER.match(question)
        cut = marker.end() if marker else 0
        parts = _parts(context.subjects, chinese)
        if not chinese:
            parts.append((": ", None))
        query, spans = _splice(question, [(0, cut, parts)], [])
        return _result(query, spans, ())
    return unchanged


def _result(
    query: str, spans: tuple[_Span, ...], references: tuple[Reference, ...]
) -> tuple[Resolution, tuple[_Span, ...]]:
    return Resolution(query, _unique(s.name for s in spans), references), spans


def _reask(
    previous: str, spans: tuple[_Span, ...], names: tuple[str, ...]
) -> tuple[str, tuple[_Span, ...]]:
    """The previous question with its objects replaced by `names`."""
    chinese = _is_chinese(previous)
    if not names:
        return previous, spans  # "还有吗？": the same question again
    if not spans:
        return _splice(previous, [(0, 0, _parts(names, chinese))], [])
    if len(spans) == len(names):
        edits = [(s.start, s.end, _parts((n,), chinese)) for s, n in zip(spans, names, strict=True)]
        return _splice(previous, edits, [])
    first, last = spans[0], spans[-1]
    if not _remainder(previous, first.start, last.end, list(spans)):
        # "Ingress 和 Service 有什么区别？" + "那 Pod 呢？": the group is replaced as one.
        return _splice(previous, [(first.start, last.end, _parts(names, chinese))], [])
    return _splice(previous, [(first.start, first.end, _parts(names, chinese))], spans[1:])


# --- objects ------------------------------------------------------------------------------


def _objects(glossary: Glossary, text: str) -> list[_Span]:
    """Where the text names objects (not question words), in reading order."""
    lowered = text.lower()
    origin = _origins(text, lowered)
    spans = []
    for mention in glossary.mentions(text):
        if not mention.strong or mention.term.word:
            continue
        end = _mention_end(mention.term, lowered, mention.start)
        spans.append(_Span(origin[mention.start], origin[end], mention.term.name))
    return spans


def _origins(text: str, lowered: str) -> list[int]:
    # Mentions are positions in the lowercased text; a few characters ("İ") lowercase to two.
    if len(lowered) == len(text):
        return list(range(len(text) + 1))
    origin = [i for i, ch in enumerate(text) for _ in ch.lower()]
    return [*origin, len(text)]


def _mention_end(term: Term, lowered: str, start: int) -> int:
    for alias in sorted({term.name.lower(), *(a.lower() for a in term.aliases)}, key=len,
                        reverse=True):
        end = start + len(alias)
        if not lowered.startswith(alias, start):
            continue
        # Same rule as the glossary's: a Latin alias ends at a word boundary.
        if re.fullmatch(r"[a-z0-9 ./-]+", alias) and re.match(r"[a-z0-9]", lowered[end:end + 1]):
            continue
        return end
    return min(len(lowered), start + len(term.name))


# --- references ---------------------------------------------------------------------------

_GENERIC_CN = r"对象|资源|组件|东西|控制器|工作负载"
_CN_REF = re.compile(
    r"(?P<all>它们|它俩|这俩|这两者|两者|二者)"
    r"|(?P<first>前者)|(?P<last>后者)"
    r"|(?P<one>(?<!其)它)"  # not 其它 ("other")
    r"|(?P<above>上面的|上述的?)"
    rf"|(?P<det>这两个|这几个|这些|那些|前面[这那]?个|后面[这那]?个|这个|那个|这种|前一个|后一个"
    rf"|(?<!应)该|此)(?P<noun>{_GENERIC_CN})?"
)
_CN_DET_ROLE: dict[str, Role] = {
    "这两个": "all", "这几个": "all", "这些": "all", "那些": "all",
    "前一个": "first", "后一个": "last",
    "前面这个": "first", "前面那个": "first", "前面个": "first",
    "后面这个": "last", "后面那个": "last", "后面个": "last",
}
# A demonstrative standing alone ("这个怎么用", "前一个呢") is followed by a predicate or a
# particle; before any other noun ("这个字段", "前一个版本") it is a determiner.
_CN_AFTER_PRONOUN = set("是有怎能可会要需支和跟与同的在用如为不也都还就对比里上中一到具")
_CN_AFTER_PRONOUN |= set("呢吗啊吧？?，,。！!；;：:")

_GENERIC_EN = r"(?:object|resource|one|thing|component|kind|controller|workload)s?"
_EN_REF = re.compile(
    r"\b(?:(?P<first>the\s+former)|(?P<last>the\s+latter)"
    r"|(?P<all>they|them|their|theirs|(?:these|those|the)\s+two|both\s+of\s+them)"
    r"|(?P<poss>its)|(?P<it>it)"
    rf"|(?P<det>this|that|these|those)(?:\s+(?P<noun>{_GENERIC_EN}))?)\b",
    re.IGNORECASE,
)
# "It" with nothing to refer to: "is it possible to …", "it is worth trying", "it depends".
_DUMMY_IT = re.compile(
    r"(?:'s|\s+(?:is|was|be|would\s+be|will\s+be|should\s+be|might\s+be|could\s+be))?"
    r"\s+(?:not\s+|really\s+|always\s+|still\s+|generally\s+)?"
    r"(?:possible|impossible|necessary|true|ok|okay|fine|safe|recommended|advisable|wise"
    r"|required|allowed|important|normal|common|better|best|easier|harder|easy|hard|difficult"
    r"|an?\s+(?:good|bad)\s+idea|(?:good|bad|best)\s+practice|worth(?:\s+it)?)"
    r"\s+(?:to|that|if|whether|when|for\s+\S+(?:\s+\S+){0,3}\s+to|\w+ing)\b"
    r"|\s+(?:depends|seems|appears|looks\s+like|turns\s+out)\b",
    re.IGNORECASE,
)
_EN_AUX = {
    "is", "are", "was", "were", "be", "does", "do", "did", "can", "could", "will", "would",
    "should", "shall", "may", "might", "must", "has", "have", "had",
}
_EN_WH = {"what", "how", "why", "when", "where", "which", "who"}
_EN_VERBS = _EN_AUX | {
    "need", "needs", "work", "works", "mean", "means", "support", "supports", "require",
    "requires", "run", "runs", "handle", "handles", "apply", "applies", "affect", "affects",
    "differ", "differs", "compare", "compares", "belong", "belongs", "contain", "contains",
    "expose", "exposes", "manage", "manages", "store", "stores", "scale", "scales", "'s",
}
_EN_PREPOSITIONS = {
    "in", "on", "for", "with", "to", "from", "into", "across", "per", "at", "by", "vs",
    "versus", "and", "or", "over", "under", "without", "inside", "within", "as", "than",
}
_CLAUSE_END = re.compile(r"[，,；;。！!？?]|\.(?=\s)")


def _references(text: str, own: Sequence[_Span]) -> list[_Ref]:
    refs = [*_chinese_references(text, own), *_english_references(text, own)]
    refs = [r for r in refs if not any(r.start < s.end and s.start < r.end for s in own)]
    # "Deployment 是什么，它怎么扩容？": the antecedent is in an earlier clause of the question.
    clause_ends = [m.start() for m in _CLAUSE_END.finditer(text)]
    own_starts = [s.start for s in own]

    def answered_inside(ref: _Ref) -> bool:
        before = [e for e in clause_ends if e < ref.start]
        return bool(before) and any(start < before[-1] for start in own_starts)

    refs = [r for r in refs if not answered_inside(r)]
    return sorted(refs, key=lambda r: r.start)[:MAX_REFERENCES]


def _chinese_references(text: str, own: Sequence[_Span]) -> list[_Ref]:
    refs = []
    for match in _CN_REF.finditer(text):
        plain: list[Role] = ["all", "first", "last", "one"]
        role = next((r for r in plain if match.group(r)), None)
        if role is not None:
            refs.append(_Ref(match.start(), match.end(), role))
        elif match.group("above"):
            refs.append(_Ref(match.start(), match.end(), "one", "的"))
        else:
            det = match.group("det")
            role = _CN_DET_ROLE.get(det, "one")
            # 该/此 are determiners only ("该资源"); the others also stand alone ("这个呢").
            alone = det not in ("该", "此") and _alone_cn(text, match.end(), own)
            if match.group("noun") or alone:
                refs.append(_Ref(match.start(), match.end(), role))
    return refs


def _alone_cn(text: str, end: int, own: Sequence[_Span]) -> bool:
    rest = text[end:].lstrip()
    if not rest:
        return True
    start = len(text) - len(rest)
    if any(s.start == start for s in own):
        return False  # "这个 Deployment": a determiner of a named object
    return rest[0] in _CN_AFTER_PRONOUN


def _english_references(text: str, own: Sequence[_Span]) -> list[_Ref]:
    refs = []
    for match in _EN_REF.finditer(text):
        start, end = match.span()
        if match.group("first"):
            refs.append(_Ref(start, end, "first"))
        elif match.group("last"):
            refs.append(_Ref(start, end, "last"))
        elif match.group("all"):
            refs.append(_Ref(start, end, "all"))
        elif match.group("poss"):
            refs.append(_Ref(start, end, "one", "'s"))
        elif match.group("it"):
            if not _DUMMY_IT.match(text, end) and not re.search(r"\bworth\s+$", text[:start],
                                                                  re.IGNORECASE):
                refs.append(_Ref(start, end, "one"))
        else:
            det = match.group("det").lower()
            role: Role = "all" if det in ("these", "those") else "one"
            if match.group("noun") or _alone_en(text, start, match.end("det"), det, own):
                refs.append(_Ref(start, end, role))
    return refs


def _alone_en(text: str, start: int, end: int, det: str, own: Sequence[_Span]) -> bool:
    """Whether "this"/"that" at start..end is a pronoun, not a determiner or conjunction."""
    rest = text[end:]
    stripped = rest.lstrip()
    if not stripped or unicodedata.category(stripped[0]).startswith("P") and stripped[0] != "'":
        return True
    if any(s.start == len(text) - len(stripped) for s in own):
        return False  # "this Service"
    word = re.match(r"'s|[A-Za-z]+", stripped)
    if word is None:
        return False
    following = word.group(0).lower()
    if following in _EN_PREPOSITIONS:
        return True
    if following not in _EN_VERBS:
        return False  # "this error", "that the Pod …"
    if det != "that":
        return True
    # "that" before a verb is a pronoun after an auxiliary or a question word ("what does
    # that mean"), a relative pronoun after a noun ("the Pod that runs").
    before = re.search(r"([A-Za-z]+)\W*$", text[:start])
    return before is None or before.group(1).lower() in _EN_AUX | _EN_WH or bool(
        re.search(r"[.?!,;:]\s*$", text[:start])
    )


# --- elliptical follow-ups ----------------------------------------------------------------

_MARKER = re.compile(r"^\s*(?:那么|那(?![个些种里边样])|还有|另外|(?:and|so)\b)[\s,，]*", re.I)
_CN_ELLIPSIS = re.compile(
    r"^\s*(?P<mark>那么|那(?![个些种里边样])|还有|另外)?\s*(?P<np>.*?)\s*"
    r"(?P<tail>呢|怎么样|如何|吗)?\s*[？?。.!！]*\s*$",
    re.S,
)
_EN_ELLIPSIS = re.compile(
    r"^\s*(?P<mark>(?:and\s+)?(?:what|how)\s+about|and)\s+(?P<np>.*?)\s*[?.!]*\s*$",
    re.I | re.S,
)
# Words that make "那 <phrase> 呢？" a request ("还有 YAML 吗？"), not another object.
_REQUEST_WORDS = re.compile(
    r"yaml|yml|示例|例子|样例|模板|命令|清单|配置|写法|用法|参数|日志|原理|作用|区别|类型|步骤"
    r"|example|sample|command|manifest|config|usage",
    re.I,
)
# How names of components, commands and fields look: kube-dns, EXPOSE, etcd3, v1.Pod.
_IDENTIFIER = re.compile(r"[A-Za-z](?=[\w.-]*(?:[-.\d]|[A-Z]))[\w.-]*")
# A phrase with these is a question of its own, not "what about <phrase>".
_CN_CLAUSE = re.compile(
    r"怎|如何|为什么|为啥|什么|哪|吗|呢|是否|能否|能不能|可不可以|可以|会不会|是不是|有没有"
    r"|要不要|需不需要|多少|几|支持|需要|应该|是|有|吧"
)
_EN_CLAUSE = re.compile(
    r"\b(?:how|what|why|when|where|which|who|whose|can|could|do|does|did|is|are|was|were|will"
    r"|would|should|shall|may|might|must|has|have|i|we|you|then|also|so|else|more)\b",
    re.I,
)
_FILLER = re.compile(
    r"[\s、,，&/.]+|以及|或者|和|与|跟|及|或|的|'s\b|\b(?:and|or|vs|versus|the|an?)\b", re.I
)


def _ellipsis(text: str, own: Sequence[_Span], refs: Sequence[_Ref]) -> tuple[int, int] | None:
    """Where the phrase of "那 <phrase> 呢？" / "What about <phrase>?" is, if it is one."""
    english = _EN_ELLIPSIS.match(text)
    if english is not None:
        start, end = english.span("np")
        clause = _EN_CLAUSE
    else:
        chinese = _CN_ELLIPSIS.match(text)
        if chinese is None:
            return None
        mark, tail = chinese.group("mark"), chinese.group("tail")
        if not (mark or tail) or (tail == "吗" and mark != "还有"):
            return None
        start, end = chinese.span("np")
        clause = _CN_CLAUSE
    inside: list[_Span | _Ref] = [s for s in own if start <= s.start < end]
    inside += [r for r in refs if start <= r.start < end]
    blanked = _blank(text, start, end, inside)
    return None if clause.search(blanked) else (start, end)


def _blank(text: str, start: int, end: int, spans: Sequence[_Span | _Ref]) -> str:
    chars = list(text[start:end])
    for span in spans:
        for i in range(max(span.start, start), min(span.end, end)):
            chars[i - start] = " "
    return "".join(chars)


def _remainder(text: str, start: int, end: int, spans: Sequence[_Span | _Ref]) -> str:
    """What text[start:end] says besides the given objects and references and connectives."""
    return _FILLER.sub("", _blank(text, start, end, spans))


# --- text ---------------------------------------------------------------------------------


def _is_chinese(text: str) -> bool:
    return any(_cjk(ch) for ch in text)


def _cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _parts(names: Sequence[str], chinese: bool, suffix: str = "") -> list[_Part]:
    """The objects as a phrase: "A 和 B", "A、B 和 C", "A and B"; "A's" or "A 的"."""
    last = " 和 " if chinese else " and "
    parts: list[_Part] = []
    for i, name in enumerate(names):
        if i:
            parts.append((last if i == len(names) - 1 else ("、" if chinese else ", "), None))
        parts.append((name, name))
    if suffix == "的":
        parts.append((" 的", None))
    elif suffix:
        parts.append((suffix, None))
    return parts


def _spaced(left: str, right: str) -> bool:
    """Whether a space belongs between two characters that end up side by side."""
    if not left or not right or left.isspace() or right.isspace():
        return False
    if unicodedata.category(left).startswith("P") or unicodedata.category(right).startswith("P"):
        return False
    return not (_cjk(left) and _cjk(right))


def _splice(
    text: str, edits: Sequence[_Edit], kept: Sequence[_Span]
) -> tuple[str, tuple[_Span, ...]]:
    """Apply the edits; returns the text and where its objects (kept and new) are."""
    out = ""
    spans: list[_Span] = []
    pos = 0

    def copy(until: int) -> None:
        nonlocal out, pos
        for span in kept:
            if pos <= span.start and span.end <= until:
                offset = len(out) + span.start - pos
                spans.append(_Span(offset, offset + span.end - span.start, span.name))
        out += text[pos:until]
        pos = until

    for start, end, parts in sorted(edits, key=lambda e: e[0]):
        copy(start)
        replacement = "".join(piece for piece, _ in parts)
        if replacement and _spaced(out[-1:], replacement[0]):
            out += " "
        for piece, name in parts:
            if name is not None:
                spans.append(_Span(len(out), len(out) + len(piece), name))
            out += piece
        pos = end
        if replacement and _spaced(replacement[-1], text[end:end + 1]):
            out += " "
    copy(len(text))
    lead = len(out) - len(out.lstrip())
    spans = [_Span(s.start - lead, s.end - lead, s.name) for s in spans]
    return out.strip(), tuple(sorted(spans, key=lambda s: s.start))


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
