"""Find note files under corpus roots and decode them (UTF-8, UTF-8 with BOM, GB18030/GBK,
UTF-16 with BOM).

What is a note is decided here once, for indexing and hence for `/notes` (which serves only
what the index holds): files with a note suffix outside hidden folders; a symbolic link (to a
file or a folder) is followed when it resolves inside its corpus root and skipped, with the
reason, when it points outside it (or nowhere). Every file that is not indexed — binary,
undecodable, unreadable, too large, gone between listing and reading — is reported by name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.types import SkippedFile, SourceDocument

NOTE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
MAX_NOTE_BYTES = 20 * 1024 * 1024  # larger "notes" are dumps or binaries, not notes
MAX_FOLDERS = 100_000  # folders walked per root (symlinked folders can multiply them)

# GB18030 is a superset of GBK and GB2312, so one attempt covers all three.
_FALLBACK_ENCODINGS = ("gb18030",)


class UndecodableError(ValueError):
    pass


def decode_note(raw: bytes) -> tuple[str, str]:
    """Return (text, encoding). Raises UndecodableError for binary or unknown encodings."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in raw[:8192]:
        # UTF-16 with its byte-order mark (Windows editors); the NULs of its ASCII
        # characters say it is not some other byte soup that starts with FF FE.
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UndecodableError(f"UTF-16 解码失败：{exc.reason} at byte {exc.start}") from None
        if _mostly_text(text):
            return text.removeprefix("\ufeff"), "utf-16"
    if b"\x00" in raw[:8192]:
        raise UndecodableError("二进制文件（含 NUL 字节；无 BOM 的 UTF-16 也不支持）")
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise UndecodableError(
                f"有 UTF-8 BOM 但不是合法的 UTF-8：{exc.reason} at byte {exc.start + 3}"
            ) from None
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


@dataclass(frozen=True)
class _Listed:
    path: Path  # as found under the root (a symlink keeps its own name)
    skip: str | None = None  # why it is not read, when it is not


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _list_notes(root: Path) -> Iterator[_Listed]:
    """Note files under `root` (already resolved), sorted, hidden folders left out; symlinks
    followed only when they resolve inside `root`, never into a folder being walked
    already (a loop)."""
    # Each folder to walk with the real folders on its way down from the root.
    stack: list[tuple[Path, frozenset[Path]]] = [(root, frozenset({root}))]
    found: list[_Listed] = []
    walked = 0
    while stack:
        folder, chain = stack.pop()
        walked += 1
        if walked > MAX_FOLDERS:
            found.append(_Listed(folder, f"目录太多：超过 {MAX_FOLDERS} 个，其余未读取"))
            break
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            found.append(_Listed(folder, f"无法列出目录：{exc.strerror or exc}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue  # hidden files and folders (.git, .obsidian) hold no notes
            is_note = path.suffix.lower() in NOTE_SUFFIXES
            try:
                if entry.is_symlink():
                    try:
                        target = path.resolve(strict=True)
                    except (OSError, RuntimeError):  # dangling, or a loop of links
                        if is_note:
                            found.append(_Listed(path, "符号链接无法解析：目标不存在或链接成环"))
                        continue
                    if not _inside(target, root):
                        if is_note or target.is_dir():
                            found.append(_Listed(path, f"符号链接指向语料目录之外：{target}"))
                        continue
                    if target.is_dir():
                        if target not in chain:  # else a loop back up: already being walked
                            stack.append((path, chain | {target}))
                    elif is_note and target.is_file():
                        found.append(_Listed(path))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((path, chain | {path.resolve()}))
                elif is_note and entry.is_file(follow_symlinks=False):
                    found.append(_Listed(path))
            except OSError as exc:
                found.append(_Listed(path, f"无法读取：{exc.strerror or exc}"))
    yield from sorted(found, key=lambda item: item.path.relative_to(root).parts)


def iter_note_paths(root: Path) -> Iterator[Path]:
    """The note files `scan_corpus` reads under `root` (not those it skips)."""
    root = root.resolve()
    for item in _list_notes(root):
        if item.skip is None:
            yield item.path


def _read(path: Path) -> bytes:
    """The file's bytes, at most MAX_NOTE_BYTES (OSError for anything else)."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_NOTE_BYTES + 1)
    if len(raw) > MAX_NOTE_BYTES:
        raise _TooLarge(f"文件太大：超过 {MAX_NOTE_BYTES // (1024 * 1024)} MB")
    return raw


class _TooLarge(Exception):
    pass


def scan_corpus(roots: Iterable[Path]) -> CorpusScan:
    """Read every note under the roots. Unreadable files are skipped, never fatal."""
    scan = CorpusScan()
    roots = list(roots)
    multi = len(roots) > 1
    for root in roots:
        root = root.resolve()
        if root.is_file():
            listed: Iterable[_Listed] = [_Listed(root)]
            base = root.parent
        else:
            listed = _list_notes(root)
            base = root
        for item in listed:
            path = item.path
            rel = path.relative_to(base).as_posix()
            # With several roots, prefix the root's name so paths stay unique.
            label = f"{base.name}/{rel}" if multi else rel
            if item.skip is not None:
                scan.skipped.append(SkippedFile(label, item.skip))
                continue
            try:
                raw = _read(path)
            except FileNotFoundError:
                scan.skipped.append(SkippedFile(label, "文件在读取前已被删除"))
                continue
            except _TooLarge as exc:
                scan.skipped.append(SkippedFile(label, str(exc)))
                continue
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
