"""recall@10 on a synthetic index counted by source chunk: its replicas of one real chunk are
interchangeable, so a returned row is a hit when its source is among the exact top 10's.
A one-off check beside the scale part (replicas are near-duplicates, a hard case for HNSW):

    python -m bench.source_recall INDEX_BUILD SOURCE_CHUNKS [QUESTIONS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import questions


def main(build: Path, base_n: int, count: int) -> None:
    from indexer.embedding import load_embedder
    from indexer.settings import Settings
    from indexer.store import _read_dense

    index: Any = _read_dense(build / "dense.faiss")  # an IndexHNSWFlat (above 20k chunks)
    vectors = faiss.downcast_index(index.storage).reconstruct_n(0, index.ntotal)
    s = Settings()
    embedder = load_embedder(s.model, s.cache_dir, s.embed_batch_size, s.embed_backend,
                             s.embed_threads)
    queries = embedder.encode_queries(questions(count)).astype(np.float32)
    for ef in (256, 512):
        index.hnsw.efSearch = ef
        _, got = index.search(queries, 10)
        rows = sources = total = 0
        for query, found in zip(queries, got, strict=True):
            sims = vectors @ query
            top = np.argpartition(-sims, 10)[:10]
            found = found[found >= 0]
            rows += int(np.sum(sims[found] >= sims[top].min() - 1e-5))  # ties count
            exact = set((top % base_n).tolist())
            sources += len(exact & set((found % base_n).tolist()))
            total += len(exact)
        print(json.dumps({"efSearch": ef, "questions": len(queries),
                          "recall_at_10_rows": round(rows / (10 * len(queries)), 4),
                          "recall_at_10_source_chunks": round(sources / total, 4)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), int(sys.argv[2]),
         int(sys.argv[3]) if len(sys.argv) > 3 else 100)
