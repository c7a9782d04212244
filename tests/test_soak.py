"""The short soak (issue 12): scripts/soak.py for 30 s against a real `notesqa serve` on
loopback (hashing embedder, so it starts in seconds), mixed traffic from three clients with
a re-index and swap halfway. No request may fail other than the bad ones with a 4xx, every
phase is served, the new notes answer, and the server's memory does not grow past warm-up.
The 5-minute run with the real model is `.venv/bin/python scripts/soak.py` (figures in
docs/reliability.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.conftest import ROOT

SECONDS = 30


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


def test_a_short_soak_with_a_swap_fails_nothing_and_does_not_grow(tmp_path: Path) -> None:
    report = load_soak().run(SECONDS, clients=3, model="hashing", work=tmp_path / "soak")
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "soak-short.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print("soak:", json.dumps({k: v for k, v in report.items() if k != "rss_mb"}))
    total = report["total"]
    assert total["errors"] == 0 and total["status_5xx"] == 0, report["unexpected"]
    for phase in ("before", "during", "after"):
        assert report[phase]["requests"] > 20, report
    assert report["by_kind"].get("vote", 0) > 0 and report["by_kind"].get("ask-history", 0) > 0
    assert report["swap_answered"], report["swap"]
    rss = report["rss_mb"]
    # Allocator pools and caches settle during warm-up; afterwards a leak would show as
    # steady growth. Generous for a 30 s run: the 5-minute figures are in the docs.
    assert rss["max_after_warm_up"] <= rss["after_warm_up"] * 1.15 + 30, rss
