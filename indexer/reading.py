"""Find note files under corpus roots and decode them (UTF-8, UTF-8 with BOM, GB18030/GBK)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.types import SkippedFile, SourceDocument

NOTE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})

# GB18030 is a superset of GBK and GB2312, so one attempt covers all three.
_FALLBACK_ENCODINGS = ("gb18030",)


class UndecodableError(ValueError):
    pass


def decode_note(raw: bytes) -> tuple[str, str]:
    """Return (text, encoding). Raises UndecodableError for binary or unknown encodings."""
    if b"\x00" in raw[:8192]:
        raise UndecodableError("二进制文件（含 NUL 字节）")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        for encoding in _FALLBACK_ENCODINGS:
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            if _mostly_text(text):
                return text, encoding
        raise UndecodableError(
            f"无法识别的编码（不是 UTF-8 或 GB18030/GBK）：{utf8_error.reason} "
            f"at byte {utf8_error.start}"
        ) from None


def _mostly_text(text: str) -> bool:
    # gb18030 decodes almost any byte soup; reject results full of control characters.
    if not text:
        return True
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return controls / len(text) < 0.01


@dataclass
class CorpusScan:
    documents: list[SourceDocument] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def iter_note_paths(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in NOTE_SUFFIXES:
            # Hidden folders (.git, .obsidian) hold no notes.
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            yield path


def scan_corpus(roots: Iterable[Path]) -> CorpusScan:
    """Read every note under the roots. Unreadable files are skipped, never fatal."""
    scan = CorpusScan()
    roots = list(roots)
    multi = len(roots) > 1
    for root in roots:
        root = root.resolve()
        if root.is_file():
            candidates: Iterable[Path] = [root]
            base = root.parent
        else:
            candidates = iter_note_paths(root)
            base = root
        for path in candidates:
            rel = path.relative_to(base).as_posix()
            # With several roots, prefix the root's name so paths stay unique.
            label = f"{base.name}/{rel}" if multi else rel
            try:
                raw = path.read_bytes()
            except OSError as exc:
                scan.skipped.append(SkippedFile(label, f"无法读取：{exc.strerror or exc}"))
                continue
            try:
                text, encoding = decode_note(raw)
            except UndecodableError as exc:
                scan.skipped.append(SkippedFile(label, str(exc)))
                continue
            scan.documents.append(
                SourceDocument(
                    path=label,
                    root=str(base),
                    file=str(path),
                    text=text.replace("\r\n", "\n").replace("\r", "\n"),
                    encoding=encoding,
                    sha256=hashlib.sha256(raw).hexdigest(),
                )
            )
    return scan
