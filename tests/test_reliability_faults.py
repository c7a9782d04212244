"""Faults (issue 12): the indexer killed with SIGKILL at each step and at random moments, a
corrupted or truncated index file, the disk filling up while an index is written, and the
feedback store written by several processes at once. The published index stays intact and
loadable, the next build succeeds and reuses what it can, the service keeps serving (or says
why it cannot), the CLI names the broken file, and no vote is lost."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.embedding import HashingEmbedder
from indexer.settings import Settings
from indexer.store import (
    STALE_TMP_S,
    IndexCorruptError,
    current_build,
    load_build,
    load_index,
)
from indexer.tokenization import Tokenizer
from service.app import create_app
from service.feedback import AskRecord, FeedbackStore
from tests.conftest import NOTES, ROOT

NOTESQA = Path(sys.executable).parent / "notesqa"

# Runs a build in its own process and stops, at the named point, to be killed there.
CHILD = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import bm25s, faiss
    import indexer.build as build
    import indexer.store as store
    from indexer.embedding import HashingEmbedder
    from indexer.settings import Settings
    from indexer.tokenization import Tokenizer

    point, corpus, index_dir, marker = sys.argv[1:5]

    def pause():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(300)

    def after(fn):
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            pause()
            return result
        return wrapped

    def before(fn):
        def wrapped(*args, **kwargs):
            pause()
            return fn(*args, **kwargs)
        return wrapped

    class Embedder(HashingEmbedder):
        def encode_passages(self, texts, progress=None):
            half = len(texts) // 2
            first = super().encode_passages(texts[:half])
            if point == "embedding":
                pause()
            return __import__("numpy").vstack([first, super().encode_passages(texts[half:])])

    if point == "writing-vectors":
        faiss.write_index = after(faiss.write_index)
    elif point == "writing-bm25":
        bm25s.BM25.save = after(bm25s.BM25.save)
    elif point == "before-publish":
        build.publish = before(build.publish)
    elif point == "swapping-link":
        store.os.replace = before(os.replace)
    elif point == "pruning":
        store._prune = before(store._prune)

    settings = Settings(corpus=[Path(corpus)], index_dir=Path(index_dir), model="hashing")
    build.build_index(settings, Embedder(), Tokenizer())
    Path(marker).write_text("finished")
''')


def hashing(tmp_path: Path, corpus: Path, **extra: object) -> Settings:
    return Settings(corpus=[corpus], index_dir=tmp_path / "index", model="hashing",
                    feedback_db=tmp_path / "feedback.sqlite3", rate_limit_per_minute=0,
                    **{**LENIENT, **extra})  # type: ignore[arg-type]


# The hashing embedder's similarities mean little (see conftest): answer what has words.
LENIENT = {"abstain_threshold": -0.5, "abstain_threshold_dense": -0.5,
           "abstain_threshold_bm25": -0.5}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped notes and a few more files, indexed once; each test gets a copy."""
    work = tmp_path_factory.mktemp("faults-base")
    root = work / "corpus"
    root.mkdir()
    shutil.copy(NOTES, root / NOTES.name)
    for i in range(6):
        (root / f"extra-{i}.md").write_text(
            f"# 附加笔记 {i}\n\n第 {i} 篇附加笔记，讲 Pod 与 Service 的第 {i} 个细节。\n", "utf-8"
        )
    build_index(hashing(work, root), HashingEmbedder(), Tokenizer())
    return work


@pytest.fixture
def corpus(tmp_path: Path, base: Path) -> Path:
    """A copy of the base corpus with its published index (tmp_path/index)."""
    shutil.copytree(base / "corpus", tmp_path / "corpus")
    shutil.copytree(base / "index", tmp_path / "index", symlinks=True)
    return tmp_path / "corpus"


def run_child_and_kill(tmp_path: Path, corpus: Path, point: str,
                       delay: float | None = None) -> str:
    """Start a build in another process and SIGKILL it at `point` (or after `delay`
    seconds); returns how it ended: "killed" or "finished" (it beat the delay)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD, "utf-8")
    marker = tmp_path / f"marker-{point}-{delay}"
    proc = subprocess.Popen(
        [sys.executable, str(script), point, str(corpus), str(tmp_path / "index"), str(marker)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        if delay is not None:
            time.sleep(delay)
        else:
            while not marker.exists():
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finished = marker.exists() and marker.read_text() == "finished"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "finished" if finished else "killed"


def assert_intact_then_rebuild(tmp_path: Path, corpus: Path, settings: Settings) -> None:
    # Loads, every part checked against the others (what the service does, see the
    # corruption tests below for what it says when that fails).
    index = load_index(settings.index_dir)
    assert index.manifest.chunk_count == len(index.chunks) > 0
    # The next build succeeds and reuses the published index's vectors.
    (corpus / "extra-0.md").write_text("# 改过的笔记\n\n改过以后的内容。\n", "utf-8")
    long_ago = (time.time() - STALE_TMP_S - 1,) * 2
    for leftover in (settings.index_dir / "builds").glob(".tmp-*"):
        os.utime(leftover, long_ago)  # as if long ago
    for link in settings.index_dir.glob(".current.*"):
        os.utime(link, long_ago, follow_symlinks=False)
    report = build_index(settings, HashingEmbedder(), Tokenizer())
    assert report.reused >= report.chunks - 2 and report.embedded <= 2, report
    load_index(settings.index_dir)
    names = [p.name for p in (settings.index_dir / "builds").iterdir()]
    assert not [n for n in names if n.startswith(".tmp-")], names  # killed build cleaned up
    assert not list(settings.index_dir.glob(".current.*"))


@pytest.mark.parametrize(
    "point",
    ["embedding", "writing-vectors", "writing-bm25", "before-publish", "swapping-link",
     "pruning"],
)
def test_sigkill_at_each_step_leaves_a_loadable_index(
    tmp_path: Path, corpus: Path, point: str
) -> None:
    settings = hashing(tmp_path, corpus)
    before = current_build(settings.index_dir)
    (corpus / "extra-1.md").write_text("# 新内容\n\n这次构建会被杀掉。\n", "utf-8")
    assert run_child_and_kill(tmp_path, corpus, point) == "killed"
    after = current_build(settings.index_dir)
    # Killed before the link swap: the old build; killed while pruning: the new one.
    assert (after == before) == (point != "pruning"), (point, before, after)
    assert_intact_then_rebuild(tmp_path, corpus, settings)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_a_random_moment_leaves_a_loadable_index(
    tmp_path: Path, corpus: Path, seed: int
) -> None:
    settings = hashing(tmp_path, corpus)
    (corpus / "extra-2.md").write_text(f"# 第 {seed} 次\n\n随机时刻被杀掉的构建。\n", "utf-8")
    # A child build takes about 1-2 s here, most of it starting Python and imports.
    delay = random.Random(seed).uniform(0.5, 2.5)
    run_child_and_kill(tmp_path, corpus, "none", delay=delay)
    assert_intact_then_rebuild(tmp_path, corpus, settings)


# --------------------------------------------------------------------------- corruption

def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_last_line(path: Path) -> None:
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), "utf-8")


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(64, path.stat().st_size)))


def first_file(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_file())[0]


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "manifest-truncated": ("manifest.json", lambda b: truncate(b / "manifest.json")),
    "manifest-missing": ("manifest.json", lambda b: (b / "manifest.json").unlink()),
    "manifest-wrong-fields": (
        "manifest.json", lambda b: (b / "manifest.json").write_text('{"files": {}}', "utf-8")),
    "chunks-truncated": ("chunks.jsonl", lambda b: truncate(b / "chunks.jsonl")),
    "chunks-line-dropped": ("chunks.jsonl", lambda b: drop_last_line(b / "chunks.jsonl")),
    "yaml-line-dropped": ("yaml.jsonl", lambda b: drop_last_line(b / "yaml.jsonl")),
    "dense-garbage": ("dense.faiss", lambda b: garbage(b / "dense.faiss")),
    "dense-truncated": ("dense.faiss", lambda b: truncate(b / "dense.faiss")),
    "bm25-garbage": ("bm25", lambda b: garbage(first_file(b / "bm25"))),
    "bm25-missing": ("bm25", lambda b: shutil.rmtree(b / "bm25")),
    "sentences-truncated": ("sentence_rows.npy", lambda b: truncate(b / "sentence_rows.npy")),
    "sentence-text-truncated": (
        "sentence_rows.npy", lambda b: truncate(b / "sentence_text.bin")),
    "sentence-vectors-truncated": ("sentences.npy", lambda b: truncate(b / "sentences.npy")),
    "terms-truncated": ("terms.npy", lambda b: truncate(b / "terms.npy")),
    "terms-offsets-garbage": ("terms.npy", lambda b: garbage(b / "terms_indptr.npy")),
    "names-truncated": ("names.json", lambda b: truncate(b / "names.json")),
    "english-truncated": ("english.json", lambda b: truncate(b / "english.json")),
    "note-text-missing": ("notes/", lambda b: first_file(b / "notes").unlink()),
}


@pytest.fixture
def built(tmp_path: Path, corpus: Path) -> Settings:
    return hashing(tmp_path, corpus)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_broken_index_file_is_named_with_how_to_rebuild(built: Settings, case: str) -> None:
    name, damage = CORRUPTIONS[case]
    build = current_build(built.index_dir)
    assert build is not None
    damage(build)
    with pytest.raises(IndexCorruptError) as caught:
        load_build(build)
    message = str(caught.value)
    assert name in message and "notesqa index --out" in message, message
    # The only index is broken: the service is not ready and says why.
    with TestClient(create_app(built)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and name in ready.json()["reason"]
        assert client.post("/ask", json={"question": "Pod"}).status_code == 503
    if case == "chunks-line-dropped":  # and the next build replaces it (once is enough)
        build_index(built, HashingEmbedder(), Tokenizer())
        load_index(built.index_dir)


@pytest.mark.parametrize("case", ["chunks-line-dropped", "dense-garbage"])
def test_the_cli_names_the_broken_file_and_the_rebuild_command(
    built: Settings, case: str
) -> None:
    name, damage = CORRUPTIONS[case]
    build = current_build(built.index_dir)
    assert build is not None
    damage(build)
    env = {**os.environ, "NOTESQA_MODEL": "hashing", "COLUMNS": "300"}
    done = subprocess.run(
        [str(NOTESQA), "ask", "Pod 是什么？", "--index", str(built.index_dir)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert name in said and "notesqa index --out" in said, said
    assert "Traceback" not in said


def test_a_broken_new_build_leaves_the_old_one_serving(built: Settings, corpus: Path) -> None:
    with TestClient(create_app(built)) as client:
        serving = client.get("/readyz").json()["index"]
        (corpus / "extra-3.md").write_text("# 新\n\n新的一篇。\n", "utf-8")
        build_index(built, HashingEmbedder(), Tokenizer())
        new = current_build(built.index_dir)
        assert new is not None and new.name != serving
        drop_last_line(new / "chunks.jsonl")
        outcome = client.post("/admin/reload").json()
        assert outcome["outcome"] == "failed" and "chunks.jsonl" in outcome["reason"]
        ready = client.get("/readyz").json()
        assert ready["index"] == serving and "chunks.jsonl" in ready["reload_error"]
        assert client.post("/ask", json={"question": "Secret 是什么？"}).json()["found"]


# --------------------------------------------------------------------------- disk full

@pytest.mark.parametrize(
    "target",
    ["indexer.store.faiss.write_index", "bm25s.BM25.save", "pathlib.Path.write_text",
     "pathlib.Path.rename", "pathlib.Path.symlink_to"],
)
def test_disk_full_while_writing_keeps_the_old_index_serving(
    built: Settings, corpus: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    with TestClient(create_app(built)) as client:
        serving = client.get("/readyz").json()["index"]
        (corpus / "extra-4.md").write_text("# 又一篇\n\n磁盘写满时的新内容。\n", "utf-8")

        def disk_full(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(target, disk_full)
            with pytest.raises(OSError, match="No space left"):
                build_index(built, HashingEmbedder(), Tokenizer())
        assert client.post("/admin/reload").json()["outcome"] == "unchanged"
        assert client.get("/readyz").json()["index"] == serving
        assert client.post("/ask", json={"question": "Secret 是什么？"}).json()["found"]
        names = [p.name for p in (built.index_dir / "builds").iterdir()]
        assert not [n for n in names if n.startswith(".tmp-")], names
    load_index(built.index_dir)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_keeps_the_old_index(
    tmp_path: Path, corpus: Path, small_tmpfs: Path
) -> None:
    settings = Settings(corpus=[corpus], index_dir=small_tmpfs / "index", model="hashing",
                        feedback_db=tmp_path / "feedback.sqlite3", rate_limit_per_minute=0,
                        **LENIENT)  # type: ignore[arg-type]
    build_index(settings, HashingEmbedder(), Tokenizer())
    before = current_build(settings.index_dir)
    # Fill what is left, then ask for a build that needs room.
    with (small_tmpfs / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    (corpus / "extra-5.md").write_text("# 满了\n\n" + "很多新内容。" * 2000 + "\n", "utf-8")
    with pytest.raises((OSError, RuntimeError), match="No space left"):  # faiss: RuntimeError
        build_index(settings, HashingEmbedder(), Tokenizer())
    assert current_build(settings.index_dir) == before
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["index"] == before.name  # type: ignore[union-attr]
        assert client.post("/ask", json={"question": "Secret 是什么？"}).json()["found"]
    (small_tmpfs / "filler").unlink()
    build_index(settings, HashingEmbedder(), Tokenizer())  # room again: it succeeds
    assert current_build(settings.index_dir) != before


# --------------------------------------------------------------------------- feedback

def _writer(db: str, worker: int, rounds: int) -> None:
    store = FeedbackStore(Path(db), retention_days=90)
    for i in range(rounds):
        record = AskRecord(question=f"q{worker}-{i}", rewritten_query="q", found=True,
                           answer="a", confidence=1.0, id=f"w{worker}-{i}",
                           source="web" if worker % 2 else "slack")
        store.record_ask(record)
        # Everyone votes on one shared answer (a new user each time), and on their own.
        assert store.vote("target", 1 if worker % 2 else -1, f"user{worker}-{i}",
                          record.source) is not None
        assert store.vote(record.id, 1, f"user{worker}", record.source) is not None


def test_feedback_from_several_processes_at_once_loses_nothing(tmp_path: Path) -> None:
    """The web page and the Slack bot may run in different processes (Socket Mode runs
    beside the HTTP service): separate processes write one SQLite file at once."""
    db = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(db, retention_days=90)
    store.record_ask(AskRecord(question="shared", rewritten_query="shared", found=True,
                               answer="a", confidence=1.0, id="target"))
    workers, rounds = 3, 30
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), w, rounds)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with store.connect() as conn:
        asks = conn.execute("SELECT COUNT(*) FROM asks").fetchone()[0]
        votes = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert asks == workers * rounds + 1
    assert votes == 2 * workers * rounds
    tally = store.tally("target")
    assert (tally.up, tally.down) == (rounds * (workers // 2), rounds * (workers - workers // 2))
