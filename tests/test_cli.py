"""The `notesqa` command as a user runs it (hashing model, so it needs no model files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTESQA = Path(sys.executable).parent / "notesqa"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NOTESQA), *args], capture_output=True, text=True, env={**os.environ, **env},
        timeout=300,
    )


def test_index_then_ask(notes_corpus: Path, tmp_path: Path) -> None:
    env = {"NOTESQA_MODEL": "hashing", "COLUMNS": "200", "NOTESQA_ABSTAIN_THRESHOLD": "-0.5"}
    index = tmp_path / "idx"
    (notes_corpus / "broken.md").write_bytes(b"\x00\x01\x02")
    built = run("index", str(notes_corpus), "--out", str(index), env=env)
    assert built.returncode == 0, built.stderr
    assert "索引完成" in built.stdout
    assert "49" in built.stdout  # chunks
    assert "跳过 broken.md" in built.stdout
    again = run("index", str(notes_corpus), "--out", str(index), env=env)
    assert "新嵌入 0，复用 49" in again.stdout

    answer = run("ask", "Secret 是什么？", "--index", str(index), env=env)
    assert answer.returncode == 0, answer.stderr
    assert "敏感信息" in answer.stdout
    assert "k8s-notes.md:180-181" in answer.stdout

    as_json = run("ask", "给我一个 Deployment 的 YAML", "--index", str(index), "--json", env=env)
    body = json.loads(as_json.stdout)
    assert body["yaml_examples"][0]["kind"] == "Deployment"


def test_clear_errors(tmp_path: Path) -> None:
    env = {"NOTESQA_MODEL": "hashing"}
    missing = run("index", str(tmp_path / "nope"), "--out", str(tmp_path / "i"), env=env)
    assert missing.returncode != 0
    assert "语料目录不存在" in missing.stderr and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr

    no_index = run("ask", "Pod 是什么？", "--index", str(tmp_path / "none"), env=env)
    assert no_index.returncode == 1
    assert "notesqa index" in no_index.stderr and "Traceback" not in no_index.stderr

    blank = run("ask", "  ", "--index", str(tmp_path / "none"), env=env)
    assert blank.returncode == 2 and "问题不能为空" in blank.stderr

    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"id": "a", "question": "x", "answerable": false}\n{oops\n', "utf-8")
    evaluated = run("eval", str(bad), "--index", str(tmp_path / "none"), env=env)
    assert evaluated.returncode == 2
    assert f"{bad}:2" in evaluated.stderr and "Traceback" not in evaluated.stderr


def test_a_build_that_cannot_be_written_says_so_and_keeps_the_old_index(
    notes_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from service.cli import main

    env = {"NOTESQA_MODEL": "hashing", "COLUMNS": "200"}
    index = tmp_path / "idx"
    assert CliRunner().invoke(main, ["index", str(notes_corpus), "--out", str(index)],
                              env=env).exit_code == 0
    before = (index / "current").resolve()
    (notes_corpus / "new.md").write_text("# 新笔记\n\n新的内容。\n", "utf-8")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("indexer.store.faiss.write_index", disk_full)
    result = CliRunner().invoke(main, ["index", str(notes_corpus), "--out", str(index)], env=env)
    assert result.exit_code == 1
    assert "写入索引失败" in result.output and "No space left" in result.output
    assert "Traceback" not in result.output
    assert (index / "current").resolve() == before
