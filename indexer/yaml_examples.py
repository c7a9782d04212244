"""YAML examples in fenced code blocks: split into documents and describe them.

Every YAML document of a block becomes one `YamlExample` with its own source line range, so
an answer can cite exactly the manifest it shows.  Checking manifests against the Kubernetes
schemas is `indexer.manifest_schema`'s job; deciding which blocks are YAML at all is
`indexer.code_blocks`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from indexer.markdown import MAX_YAML_CHARS, YamlLimitError, check_yaml_limits
from indexer.types import YamlExample

if TYPE_CHECKING:  # only a type here; importing it loads the schema machinery
    from indexer.manifest_schema import ManifestValidator

__all__ = [
    "extract_examples",
    "fence_language",
    "is_yaml_fence",
    "looks_like_manifest",
]

# --------------------------------------------------------------------------- YAML parsing


class _Loader(yaml.SafeLoader):
    """SafeLoader as kubectl sees YAML: timestamps stay strings, a bare ``=`` is a string.

    kubectl converts YAML to JSON, so ``date: 2020-01-01`` is a string there; PyYAML's date
    objects would otherwise be reported as type errors that do not exist.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_value(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # PyYAML resolves a plain "=" to the (unsupported) !!value tag; see pyyaml#89.
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:value", _construct_value)


def _load_all(text: str) -> list[Any]:
    """All documents of ``text``; raises on any parse problem (callers catch broadly), and
    YamlLimitError for YAML too large, too deep or expanding to too many nodes (alias bombs),
    before anything is constructed. Tags such as ``!!python/object`` are refused by the safe
    loader: nothing in a note is ever executed."""
    check_yaml_limits(text, _Loader)
    return list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - _Loader is a SafeLoader


def _reason(exc: BaseException) -> str:
    """Why a block is not usable YAML, in one short Chinese line."""
    if isinstance(exc, YamlLimitError):
        return str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError):
        tag = getattr(exc, "problem", "") or ""
        return f"YAML 含有不允许的标签，未解析：{tag.strip()}"[:200]
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"YAML 语法错误（第 {mark.line + 1} 行第 {mark.column + 1} 列）：{exc.problem}"[:200]
    if isinstance(exc, RecursionError):
        return "YAML 嵌套太深"
    return f"YAML 无法解析：{type(exc).__name__}"


# --------------------------------------------------------------------------- fences

_YAML_LANGS = frozenset({"yaml", "yml"})


def fence_language(info: str) -> str:
    """The language a fence's info string names, lowercased ("" for none): ``yaml``,
    ``YML``, ``yaml title="x"``, ``{.yaml}`` all name ``yaml``/``yml``."""
    words = info.strip().split()
    if not words:
        return ""
    # The language is the first word; attribute syntaxes glue extra characters onto it.
    lang = re.split(r"[{},:;\[]", words[0].strip("{}.").lstrip("."), maxsplit=1)[0]
    return lang.lower()


def is_yaml_fence(info: str) -> bool:
    """True for fence info naming YAML: ``yaml``, ``YML``, ``yaml title="x"``, ``{.yaml}``."""
    return fence_language(info) in _YAML_LANGS


_MANIFEST_HINT = re.compile(r"^\s*apiVersion\s*:", re.MULTILINE)
_KIND_HINT = re.compile(r"^\s*kind\s*:", re.MULTILINE)


def looks_like_manifest(code: str) -> bool:
    """For unlabeled/other fences: does this parse to a mapping with ``apiVersion`` and ``kind``?"""
    # Cheap textual gate first: most unlabeled blocks are shell output, not worth parsing.
    if not (_MANIFEST_HINT.search(code) and _KIND_HINT.search(code)):
        return False
    try:
        docs = _load_all(code)
    except YamlLimitError:
        return True  # looks like one, but too big to parse: kept, marked invalid with why
    except Exception:  # any parser/constructor error means "not a manifest"
        return False
    return any(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs)


# --------------------------------------------------------------------------- extraction

# A line starting with "---" or "..." at column 0 always ends a YAML document, even inside a
# block scalar (YAML 1.2 c-forbidden), so splitting on such lines is exact.
_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?=\s|$)")


@dataclass(frozen=True)
class _Segment:
    first: int  # 0-based line index within the block
    last: int  # inclusive
    text: str


def _split_documents(block_lines: Sequence[str]) -> list[_Segment]:
    segments: list[_Segment] = []
    current: list[int] = []

    def flush() -> None:
        # Trim blank lines so the range covers the document's own text only.
        idx = [i for i in current if block_lines[i].strip()]
        if idx:
            first, last = idx[0], idx[-1]
            segments.append(_Segment(first, last, "\n".join(block_lines[first : last + 1])))
        current.clear()

    for i, line in enumerate(block_lines):
        if _DOC_MARKER.match(line):
            flush()
            rest = line[3:].strip()
            # "--- |" or "--- {a: 1}" start a document on the marker line itself.
            if line.startswith("---") and rest and not rest.startswith("#"):
                current.append(i)
            continue
        current.append(i)
    flush()
    return segments


_KIND_RX = re.compile(r"^kind:\s*(\S+)", re.MULTILINE)
_API_RX = re.compile(r"^apiVersion:\s*(\S+)", re.MULTILINE)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _regex_name(text: str) -> str | None:
    """``metadata.name`` of unparsable YAML: the first ``name:`` directly under ``metadata:``."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not re.match(r"^metadata:\s*(#.*)?$", line):
            continue
        child_indent: int | None = None
        for sub in lines[i + 1 :]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            indent = len(sub) - len(sub.lstrip(" "))
            if indent == 0:
                break
            if child_indent is None:
                child_indent = indent
            if indent == child_indent:
                m = re.match(r"^\s*name:\s*(.+?)\s*(?:\s#.*)?$", sub)
                if m:
                    return _unquote(m.group(1)) or None
        return None
    return None


def _regex_field(rx: re.Pattern[str], text: str) -> str | None:
    m = rx.search(text)
    return _unquote(m.group(1)) or None if m else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _describe(doc: object) -> tuple[str | None, str | None, str | None]:
    """(kind, apiVersion, metadata.name) of a parsed document; strings only."""
    if not isinstance(doc, dict):
        return None, None, None
    meta = doc.get("metadata")
    name = _str_or_none(meta.get("name")) if isinstance(meta, dict) else None
    return _str_or_none(doc.get("kind")), _str_or_none(doc.get("apiVersion")), name


def extract_examples(
    code: str,
    source: str,
    lines: tuple[int, int],
    validator: ManifestValidator | None = None,
) -> list[YamlExample]:
    """One `YamlExample` per non-empty YAML document of a fenced block.

    ``lines`` is the 1-based inclusive range of the fence's content lines; each example gets
    the range of its own document.  A block that does not parse is kept whole as a single
    example with ``valid=False`` and kind/apiVersion/name guessed with regexes.
    """
    text = code[:-1] if code.endswith("\n") else code
    block_lines = text.split("\n")
    segments = _split_documents(block_lines)

    parsed: list[tuple[_Segment, object]] = []
    try:
        for seg in segments:
            for doc in _load_all(seg.text):
                if doc is not None:  # comment-only or empty documents say nothing
                    parsed.append((seg, doc))
    except Exception as exc:  # parse errors, Helm templates, limits: keep the block, unparsed
        if not text.strip():
            return []
        head = text[:MAX_YAML_CHARS]  # the regex guesses need no more than the start
        return [
            YamlExample(
                source=source,
                lines=lines,
                yaml=text,
                valid=False,
                kind=_regex_field(_KIND_RX, head),
                api_version=_regex_field(_API_RX, head),
                name=_regex_name(head),
                problems=(_reason(exc),),
            )
        ]

    examples: list[YamlExample] = []
    for seg, doc in parsed:
        kind, api_version, name = _describe(doc)
        k8s_valid: bool | None = None
        problems: list[str] = []
        if validator is not None and isinstance(doc, dict):
            k8s_valid, problems = validator.check(doc)
        examples.append(
            YamlExample(
                source=source,
                lines=(lines[0] + seg.first, lines[0] + seg.last),
                yaml=seg.text,
                valid=True,
                kind=kind,
                api_version=api_version,
                name=name,
                k8s_valid=k8s_valid,
                problems=tuple(problems),
            )
        )
    return examples
