"""Files nobody may break the build with (issue 12): binary files, GBK/GB18030/UTF-16,
symbolic links inside and outside the corpus, unreadable files, a file deleted between
listing and reading, oversized files. Each is read correctly or skipped and reported by
name; the build finishes. One rule decides for indexing and for `/notes` (which serves only
what the index holds): a link that resolves inside the corpus root is followed, one that
points outside is skipped and reported."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import indexer.reading as reading
from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.reading import decode_note, scan_corpus
from indexer.settings import Settings
from indexer.store import load_index
from indexer.tokenization import Tokenizer
from service.app import create_app

TEXT = "# 密钥\n\nSecret 用来保存密码。𠀀 是 GB18030 的四字节字符。\n"


def settings_for(tmp_path: Path, corpus: Path) -> Settings:
    return Settings(corpus=[corpus], index_dir=tmp_path / "index", model="hashing",
                    feedback_db=tmp_path / "feedback.sqlite3", rate_limit_per_minute=0)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "ok.md").write_text(TEXT, "utf-8")
    return root


def test_every_encoding_is_read_or_reported(corpus: Path) -> None:
    (corpus / "gbk.md").write_bytes("# 密钥\n\nSecret 用来保存密码。\n".encode("gbk"))
    (corpus / "gb18030.md").write_bytes(TEXT.encode("gb18030"))
    (corpus / "utf16le.md").write_bytes(TEXT.encode("utf-16"))  # with its BOM
    (corpus / "utf16be.md").write_bytes(b"\xfe\xff" + TEXT.encode("utf-16-be"))
    (corpus / "utf16-nobom.md").write_bytes(TEXT.encode("utf-16-le"))
    (corpus / "binary.md").write_bytes(bytes(range(256)) * 4)
    (corpus / "png.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "ff-fe-noise.md").write_bytes(b"\xff\xfe" + bytes([0x80, 0x81, 0x01, 0x02]) * 50)
    (corpus / "empty.md").write_bytes(b"")
    (corpus / "bom-only.md").write_bytes(b"\xef\xbb\xbf")
    scan = scan_corpus([corpus])
    texts = {d.path: d.text for d in scan.documents}
    skipped = {s.path: s.reason for s in scan.skipped}
    assert texts["gb18030.md"] == texts["utf16le.md"] == texts["utf16be.md"] == TEXT
    assert "密钥" in texts["gbk.md"]
    assert texts["empty.md"] == texts["bom-only.md"] == ""
    assert set(skipped) == {"utf16-nobom.md", "binary.md", "png.md", "ff-fe-noise.md"}
    assert "UTF-16" in skipped["utf16-nobom.md"]
    assert {d.path: d.encoding for d in scan.documents}["utf16le.md"] == "utf-16"


def test_decode_never_raises_anything_but_undecodable() -> None:
    for raw in (b"\xff\xfe\x00", b"\xfe\xff\xd8\x00", b"\xff\xfe" + b"\x00\xd8" * 3, b"\x00",
                b"\xef\xbb\xbf\xff", bytes(range(256))):
        with contextlib.suppress(reading.UndecodableError):
            decode_note(raw)


def make_links(tmp_path: Path, corpus: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# 外部\n\n语料之外的机密 zorblax。\n", "utf-8")
    (corpus / "real").mkdir()
    (corpus / "real" / "inner.md").write_text("# 内部\n\n子目录里的笔记 quuxle。\n", "utf-8")
    (corpus / "link-inside.md").symlink_to(corpus / "ok.md")
    (corpus / "dir-inside").symlink_to(corpus / "real", target_is_directory=True)
    (corpus / "link-outside.md").symlink_to(outside / "secret.md")
    (corpus / "dir-outside").symlink_to(outside, target_is_directory=True)
    (corpus / "relative-outside.md").symlink_to(Path("..") / "outside" / "secret.md")
    (corpus / "dangling.md").symlink_to(corpus / "nowhere.md")
    (corpus / "real" / "loop").symlink_to(corpus, target_is_directory=True)
    (corpus / "self-loop.md").symlink_to(corpus / "self-loop.md")


def test_symlinks_inside_are_followed_outside_skipped_and_reported(
    tmp_path: Path, corpus: Path
) -> None:
    make_links(tmp_path, corpus)
    scan = scan_corpus([corpus])
    assert sorted(d.path for d in scan.documents) == [
        "dir-inside/inner.md", "link-inside.md", "ok.md", "real/inner.md",
    ]
    skipped = {s.path: s.reason for s in scan.skipped}
    assert set(skipped) == {"link-outside.md", "dir-outside", "relative-outside.md",
                            "dangling.md", "self-loop.md"}
    for name in ("link-outside.md", "dir-outside", "relative-outside.md"):
        assert skipped[name].startswith("符号链接指向语料目录之外"), skipped
    assert "不存在" in skipped["dangling.md"]
    assert all("zorblax" not in d.text for d in scan.documents)


def test_notes_follows_the_same_rule_as_indexing(tmp_path: Path, corpus: Path) -> None:
    make_links(tmp_path, corpus)
    settings = settings_for(tmp_path, corpus)
    report = build_index(settings, HashingEmbedder(), Tokenizer())
    assert {s.path for s in report.skipped} >= {"link-outside.md", "dir-outside"}
    manifest = load_index(settings.index_dir).manifest
    assert "link-outside.md" in manifest.skipped and "link-outside.md" not in manifest.files
    with TestClient(create_app(settings)) as client:
        assert client.get("/notes/link-inside.md").text == TEXT
        assert "quuxle" in client.get("/notes/dir-inside/inner.md").text
        for path in ("link-outside.md", "dir-outside/secret.md", "relative-outside.md",
                     "../outside/secret.md"):
            r = client.get(f"/notes/{path}")
            assert r.status_code == 404 and "zorblax" not in r.text
        answer = client.post("/ask", json={"question": "zorblax 机密是什么？"}).json()
        assert all("outside" not in c["source"] for c in answer["citations"])


@pytest.fixture
def fail_reading(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, type[OSError]]]:
    """File name -> the OSError reading it raises (running as root, chmod 000 would not
    stop the read, so the error is injected where the file is opened)."""
    failures: dict[str, type[OSError]] = {}
    real = reading._read

    def read(path: Path) -> bytes:
        if path.name in failures:
            raise failures[path.name](13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(reading, "_read", read)
    yield failures


def test_an_unreadable_file_is_skipped_and_named(
    tmp_path: Path, corpus: Path, fail_reading: dict[str, type[OSError]]
) -> None:
    (corpus / "locked.md").write_text(TEXT, "utf-8")
    if os.geteuid() != 0:
        (corpus / "locked.md").chmod(0)
    else:
        fail_reading["locked.md"] = PermissionError
    report = build_index(settings_for(tmp_path, corpus), HashingEmbedder(), Tokenizer())
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {"locked.md": "无法读取：Permission denied"}
    assert report.files == 1


def test_a_file_deleted_between_listing_and_reading_is_reported(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.md", "b.md", "c.md"):
        (corpus / name).write_text(TEXT, "utf-8")
    listed = reading._list_notes

    def list_then_delete(root: Path):  # type: ignore[no-untyped-def]
        items = list(listed(root))
        (corpus / "b.md").unlink()  # another process removes it before it is read
        yield from items

    monkeypatch.setattr(reading, "_list_notes", list_then_delete)
    report = build_index(settings_for(tmp_path, corpus), HashingEmbedder(), Tokenizer())
    assert {s.path: s.reason for s in report.skipped} == {"b.md": "文件在读取前已被删除"}
    assert report.files == 3


def test_an_oversized_file_is_skipped_without_reading_it_whole(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "MAX_NOTE_BYTES", 1000)
    (corpus / "dump.md").write_text("日志一行\n" * 1000, "utf-8")
    scan = scan_corpus([corpus])
    assert [d.path for d in scan.documents] == ["ok.md"]
    assert {s.path: s.reason for s in scan.skipped} == {"dump.md": "文件太大：超过 0 MB"}
