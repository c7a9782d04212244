#!/usr/bin/env python
"""The evaluation sets on both search backends, side by side, on one index.

    .venv/bin/notesqa index --out /tmp/notes-index
    .venv/bin/python scripts/compare_backends.py /tmp/notes-index /tmp/notes-milvus.db \\
        tests/eval/notes.jsonl tests/eval/notes-holdout.jsonl

Publishes the index folder INDEX into the milvus-lite database DB (what `notesqa index`
does with NOTESQA_MILVUS_URI set; only what changed is written when DB already holds an
earlier build), then evaluates every set on the embedded index and on Milvus, hybrid mode,
with the model the index was built with. One line per set and backend.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from indexer.milvus_store import connect
from indexer.milvus_sync import publish_to_milvus
from indexer.settings import Settings
from indexer.store import load_index
from service.abstention import object_names
from service.cli import load_engine
from service.evaluation import evaluate, load_cases
from service.glossary import Glossary

METRICS = ("answer_hit_rate", "hit_at_3", "declined_rate", "abstention_precision",
           "abstention_recall", "p50_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path, help="an index folder (notesqa index --out)")
    parser.add_argument("db", help="a milvus-lite database path ending in .db")
    parser.add_argument("sets", nargs="+", type=Path, help="evaluation sets (JSONL)")
    args = parser.parse_args()
    milvus_settings = Settings(index_dir=args.index, milvus_uri=args.db)
    started = time.perf_counter()
    report = publish_to_milvus(load_index(args.index), milvus_settings,
                               connect(milvus_settings), names=object_names(Glossary.load()))
    print(f"published: written {report.written}, deleted {report.deleted}, "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    engines = {"embedded": load_engine(Settings(index_dir=args.index)),
               "milvus": load_engine(milvus_settings)}
    for path in args.sets:
        cases = load_cases(path)
        for name, engine in engines.items():
            result = evaluate(engine, cases, "hybrid")
            figures = {key: getattr(result, key) for key in METRICS}
            print(f"{path.name}\t{name}\t{len(cases)}\t{json.dumps(figures)}", flush=True)


if __name__ == "__main__":
    main()
