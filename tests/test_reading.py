from pathlib import Path

from indexer.reading import decode_note, scan_corpus

TEXT = "# 密钥\n\nSecret 用来保存密码。\n"


def test_utf8_bom_and_gbk_are_decoded(tmp_path: Path) -> None:
    (tmp_path / "utf8.md").write_bytes(TEXT.encode("utf-8"))
    (tmp_path / "bom.md").write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    (tmp_path / "gbk.md").write_bytes(TEXT.encode("gbk"))
    (tmp_path / "gb18030.txt").write_bytes(TEXT.encode("gb18030"))
    scan = scan_corpus([tmp_path])
    by_path = {d.path: d for d in scan.documents}
    assert set(by_path) == {"utf8.md", "bom.md", "gbk.md", "gb18030.txt"}
    for doc in by_path.values():
        assert doc.text == TEXT
    assert by_path["bom.md"].encoding == "utf-8-sig"
    assert by_path["gbk.md"].encoding == "gb18030"
    assert not scan.skipped


def test_binary_and_undecodable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text(TEXT, encoding="utf-8")
    (tmp_path / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "noise.md").write_bytes(bytes([0xFF, 0xFE, 0x80, 0x81, 0x01, 0x02] * 40))
    scan = scan_corpus([tmp_path])
    assert [d.path for d in scan.documents] == ["ok.md"]
    reasons = {s.path: s.reason for s in scan.skipped}
    assert set(reasons) == {"image.md", "noise.md"}
    assert "二进制" in reasons["image.md"]


def test_only_note_files_outside_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / "a.markdown").write_text(TEXT, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text(TEXT, encoding="utf-8")
    (tmp_path / "c.yaml").write_text("kind: Pod", encoding="utf-8")
    (tmp_path / ".obsidian").mkdir()
    (tmp_path / ".obsidian" / "d.md").write_text(TEXT, encoding="utf-8")
    scan = scan_corpus([tmp_path])
    assert sorted(d.path for d in scan.documents) == ["a.markdown", "sub/b.md"]


def test_crlf_line_endings_are_normalised(tmp_path: Path) -> None:
    (tmp_path / "win.md").write_bytes("第一行\r\n第二行\r\n".encode("gbk"))
    (doc,) = scan_corpus([tmp_path]).documents
    assert doc.text == "第一行\n第二行\n"


def test_decode_reports_the_encoding() -> None:
    assert decode_note("中文".encode("gbk")) == ("中文", "gb18030")
