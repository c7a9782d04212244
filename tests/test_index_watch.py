"""`notesqa index --watch`: edits to the notes are re-indexed and published by themselves."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from indexer.store import current_build
from tests.conftest import cache_root
from tests.servers import NOTESQA


def wait_for_new_build(index_dir: Path, old: Path | None, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        build = current_build(index_dir)
        if build is not None and build != old:
            return build
        time.sleep(0.2)
    raise TimeoutError(f"no new build in {index_dir}")


def test_watch_rebuilds_after_an_edit_once_per_burst(notes_corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    env = {**os.environ, "NOTESQA_MODEL": "hashing", "NOTESQA_CACHE_DIR": str(cache_root())}
    log = (tmp_path / "watch.log").open("w")
    proc = subprocess.Popen(
        [str(NOTESQA), "index", str(notes_corpus), "--out", str(index_dir), "--watch",
         "--debounce", "300"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        first = wait_for_new_build(index_dir, None)
        time.sleep(1)  # let the watcher start before the edits
        note = notes_corpus / "hpa.md"
        for i in range(5):  # a burst of saves, as an editor makes
            note.write_text(f"# HPA\n\nHorizontalPodAutoscaler 第 {i} 版说明。\n", "utf-8")
            time.sleep(0.05)
        (notes_corpus / "ignored.png").write_bytes(b"\x89PNG")  # not a note: no rebuild
        second = wait_for_new_build(index_dir, first)
        manifest = json.loads((second / "manifest.json").read_text("utf-8"))
        assert "hpa.md" in manifest["files"]
        time.sleep(2)
        assert current_build(index_dir) == second  # one rebuild for the whole burst
        note.unlink()
        third = wait_for_new_build(index_dir, second)
        assert "hpa.md" not in json.loads((third / "manifest.json").read_text("utf-8"))["files"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "增量重建" in (tmp_path / "watch.log").read_text("utf-8")
