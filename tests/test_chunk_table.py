"""The chunk table: parsed whole when small, read row by row when large, same answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer import chunk_table
from indexer.build import build_index
from indexer.chunk_table import ChunkTable, ChunkTableError
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import IndexCorruptError, current_build, load_index
from indexer.tokenization import Tokenizer
from indexer.types import Chunk
from service.evaluation import load_cases
from service.glossary import Glossary
from service.qa import QAEngine

from .conftest import EVAL


def _chunk(i: int, yaml_ids: tuple[int, ...] = (), command_ids: tuple[int, ...] = ()) -> Chunk:
    return Chunk(
        id=f"c{i}", source="a.md", heading=("标题", f"第 {i} 节"), lines=(i + 1, i + 1),
        text=f"第 {i} 节的正文：Pod 是最小的调度单位。\n换行之后的一句。",
        yaml_ids=yaml_ids, command_ids=command_ids,
    )


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[Chunk]]:
    chunks = [_chunk(0), _chunk(1, yaml_ids=(0, 1)), _chunk(2, command_ids=(0,)), _chunk(3)]
    ChunkTable.write(tmp_path, chunks, yaml_count=2)
    return tmp_path, chunks


@pytest.mark.parametrize("eager_max", [0, 100], ids=["lazy", "eager"])
def test_rows_read_back_as_written(written: tuple[Path, list[Chunk]], eager_max: int) -> None:
    folder, chunks = written
    table = ChunkTable(folder, eager_max=eager_max)
    assert table.eager is (eager_max == 100)
    assert table.check_references(yaml_count=2, command_count=1) is None
    assert len(table) == 4
    assert [table[i] for i in range(4)] == chunks == list(table)
    assert table[-1] == chunks[-1] and table[1:3] == chunks[1:3]
    assert table.yaml_owner.tolist() == [1, 1]
    with pytest.raises(IndexError):
        table[4]


def test_a_lazy_table_checks_each_chunk_when_it_is_read(
    written: tuple[Path, list[Chunk]],
) -> None:
    folder, _ = written
    table = ChunkTable(folder, eager_max=0)
    # One command in the index, but chunk 2 was written pointing at command 0 of 0.
    assert table.check_references(yaml_count=2, command_count=0) is None  # nothing parsed
    assert table[0].id == "c0"
    with pytest.raises(ChunkTableError) as caught:
        table[2]
    assert caught.value.part == "commands.jsonl"


def test_an_eager_table_checks_every_chunk_at_load(written: tuple[Path, list[Chunk]]) -> None:
    folder, _ = written
    assert ChunkTable(folder).check_references(yaml_count=2, command_count=0) == "commands.jsonl"


def test_a_line_edited_in_place_is_caught(written: tuple[Path, list[Chunk]]) -> None:
    folder, _ = written
    path = folder / ChunkTable.FILE
    data = path.read_bytes()
    # Same length, so the offsets still add up: the record itself no longer parses.
    path.write_bytes(data.replace(b'{"id": "c3"', b'{"id"= "c3"'))
    lazy = ChunkTable(folder, eager_max=0)
    with pytest.raises(ChunkTableError, match="第 4 行"):
        lazy[3]
    with pytest.raises(ChunkTableError, match="第 4 行"):
        ChunkTable(folder)


def test_a_line_lost_from_a_large_index_is_caught_at_load(
    hashing_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    build = current_build(hashing_settings.index_dir)
    assert build is not None
    path = build / ChunkTable.FILE
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), "utf-8")
    monkeypatch.setattr(chunk_table, "EAGER_MAX_CHUNKS", 0)
    with pytest.raises(IndexCorruptError, match="chunks.jsonl"):
        load_index(hashing_settings.index_dir)


def test_lazy_and_eager_indexes_answer_alike(
    hashing_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(hashing_settings, HashingEmbedder(), Tokenizer())
    eager = load_index(hashing_settings.index_dir)
    monkeypatch.setattr(chunk_table, "EAGER_MAX_CHUNKS", 0)
    lazy = load_index(hashing_settings.index_dir)
    assert eager.chunks.eager and not lazy.chunks.eager
    engines = [
        QAEngine(index, HashingEmbedder(), Tokenizer(), Glossary.load(), hashing_settings)
        for index in (eager, lazy)
    ]
    for case in load_cases(EVAL / "notes.jsonl")[:60]:
        a, b = (
            e.ask(case.question, history=case.history).model_dump(exclude={"timings_ms"})
            for e in engines
        )
        assert json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False), case.id
