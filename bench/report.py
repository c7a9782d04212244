"""docs/performance.md from the JSON of all parts (each part keeps the machine, date and
command of the run that measured it, so parts re-run later say so)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import Json

STAGES = ("analyze", "bm25", "embed", "dense", "fuse", "search", "answer", "yaml", "total")


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) < 10 and digits < 2:
            digits = 2
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |"
            for row in rows]
    return out + [""]


def _pct(s: Json | None) -> str:
    if not s:
        return "–"
    return f"{_f(s.get('p50'))} / {_f(s.get('p95'))} / {_f(s.get('p99'))}"


def _meta(part: Json) -> list[str]:
    m = part.get("meta", {})
    mach = m.get("machine", {})
    return [f"_Measured {mach.get('date', '?')} at commit `{mach.get('git_commit', '?')}`, "
            f"load average at start {mach.get('load_average', '?')}; "
            f"command: `{m.get('command', '?')}`_", ""]


def _stage_rows(served: Json) -> list[list[Any]]:
    stages = served.get("stages_ms", {})
    rows: list[list[Any]] = [["/ask round trip (HTTP)", _pct(served.get("ask_ms"))]]
    rows += [[f"timings_ms.{k}", _pct(stages[k])] for k in STAGES if k in stages]
    rows += [[f"timings_ms.{k}", _pct(v)] for k, v in stages.items()
             if k not in STAGES and k != "outside_pipeline"]
    if "outside_pipeline" in stages:
        rows.append(["round trip − timings_ms.total (HTTP, middleware, storing the question)",
                     _pct(stages["outside_pipeline"])])
    rows.append(["**baseline: query embedding alone** (`encode_queries([q])`, this process)",
                 _pct(served.get("embed_alone_ms"))])
    rows.append(["**baseline: GET /healthz** (HTTP floor)", _pct(served.get("healthz_ms"))])
    return rows


def build_section(part: Json) -> list[str]:
    out = ["## Index build", ""] + _meta(part)
    out.append("End to end is `notesqa index` in a subprocess on a fresh copy of the notes "
               "(texts = chunks + sentences, all embedded); the baseline is the model's "
               "`encode_passages` alone on the same texts in the bench process. Peak memory "
               "is the build process's max RSS (`RUSAGE_CHILDREN`). Under `--watch` (debounce "
               "50 ms, subtracted) the time runs from the edit to the new build being published, "
               "median of the edits after the first.")
    out.append("")
    rows = []
    for c in part["corpora"]:
        rep = c.get("incremental_report", {})
        rows.append([
            c["corpus"], c["runs"], c["files"], c["chunks"], c["texts"],
            f"{_f(c['cold_s'], 2)} s ({_f(c['cold_texts_per_s'])}/s)",
            f"{_f(c['encode_s'], 2)} s ({_f(c['encode_texts_per_s'])}/s)",
            f"{_f(c['pipeline_overhead_ratio'], 2)}×",
            f"{_f(c['no_change_s'], 2)} s",
            f"{_f(c['incremental_s'], 2)} s ({rep.get('chunks_embedded', '?')} chunks, "
            f"{rep.get('sentences_embedded', '?')} sentences re-embedded; "
            f"`{c.get('incremental_edited_file', '')}`)",
            f"{_f(c.get('watch_edit_s'), 2)} s (first edit, model loading: "
            f"{_f(c.get('watch_first_edit_s'), 2)} s)",
            f"{_f(c['peak_rss_mb']['cold'], 0)} / {_f(c['peak_rss_mb']['no_change'], 0)} / "
            f"{_f(c['peak_rss_mb']['incremental'], 0)}",
        ])
    out += _table(["corpus", "runs", "files", "chunks", "texts", "cold build (texts/s)",
                   "**baseline: encode alone** (texts/s)", "build ÷ encode",
                   "no-change rebuild", "incremental rebuild (one file edited)",
                   "the same edit under `notesqa index --watch`",
                   "peak RSS MB cold / no-change / incr."], rows)
    return out


def latency_section(part: Json) -> list[str]:
    roots = " + ".join(Path(r).name for r in part.get("roots", [])) or "?"
    out = [f"## Query latency (real index: {roots})", ""] + _meta(part)
    out.append(f"Warm, sequential, {part['questions_per_run']} questions × {part['runs']} "
               f"server runs (single-turn questions of tests/eval/notes.jsonl and "
               f"handbook.jsonl, cycled); {part['answered']} answered, {part['errors']} errors. "
               f"Cold start (spawn → /readyz 200) {_f(part['cold_start_s'], 2)} s; RSS "
               f"{_f(part['rss_after_start_mb'])} MB after start, "
               f"{_f(part['rss_after_questions_mb'])} MB after the questions; index "
               f"{_f(part['index_mb'])} MB on disk.")
    out.append("")
    out += _table(["ms", "p50 / p95 / p99"], _stage_rows(part))
    sc = part.get("search_comparison")
    if sc:
        out += ["### Search stage in-process: service Retriever vs baseline", ""]
        out += _search_rows(sc["service_retriever"], sc["baseline"], sc["chunks"])
    return out


def _search_rows(service: Json, base: Json, chunks: int) -> list[str]:
    rows = []
    for stage in ("bm25", "dense", "fuse", "search"):
        rows.append([stage, _pct(service["stages_ms"].get(stage)),
                     _pct(base["stages_ms"].get(stage))])
    s, b = service["stages_ms"]["search"]["p50"], base["stages_ms"]["search"]["p50"]
    rows.append(["**speed-up (p50 search)**", f"{_f(b / s if s else float('nan'), 2)}×", ""])
    out = [f"{chunks:,} chunks, {base['questions']} questions. Baseline = `rank_bm25.BM25Okapi` "
           f"over the same tokens (built in {_f(base['build_bm25_s'], 2)} s, "
           f"+{_f(base['bm25_rss_mb'], 0)} MB RSS, its dicts "
           f"{_f(base.get('bm25_dicts_mb'), 0)} MB) + numpy brute-force cosine over the same "
           "chunk and sentence vectors, fused the service's way.", ""]
    return out + _table(["ms", "service p50 / p95 / p99", "**baseline** p50 / p95 / p99"], rows)


def scale_section(part: Json) -> list[str]:
    out = ["## Scale (synthetic indexes)", ""] + _meta(part)
    out.append(f"Built in-process from the real index's {part['source_chunks']:,} chunks, "
               f"replicated with distinct ids, vectors perturbed (noise norm {part['noise']}) "
               "and re-normalised; BM25 tokens of each distinct chunk reused by its replicas. "
               "Search = the service's timings_ms.search (bm25 + dense + fuse) from the "
               "server; baseline search = rank_bm25 + numpy in this process on the same "
               "analysed questions and query vectors.")
    out.append("")
    rows = []
    failed = [s for s in part["sizes"] if "error" in s]
    sizes = [s for s in part["sizes"] if "error" not in s]
    for s in sizes:
        b = s.get("baseline", {})
        base_search = (
            f"{_pct(b['stages_ms']['search'])} ({b['questions']} q; BM25 dicts "
            f"{_f(b.get('bm25_dicts_mb'), 0)} MB)" if "stages_ms" in b
            else b.get("skipped", "–"))
        faiss = ", ".join(f"{k}: {v}" for k, v in s.get("faiss", {}).items())
        recall = ", ".join(f"{k} {v}" for k, v in s.get("recall_at_10", {}).items())
        build = s["build"]
        rows.append([
            s["size"], s["build"].get("sentences", "?"), s["runs"],
            _pct(s["ask_ms"]), _pct(s["stages_ms"].get("search")),
            _pct(s["embed_alone_ms"]), base_search,
            f"{_f(s['speedup_search_p50'], 2)}×" if "speedup_search_p50" in s else "–",
            f"{_f(s['rss_after_start_mb'], 0)} → {_f(s['rss_after_questions_mb'], 0)}",
            _f(s["index_mb"]), f"{_f(s['cold_start_s'], 1)} s",
            f"{_f(build['build_s'])} s, peak {_f(build.get('peak_rss_mb'), 0)} MB"
            + (" (cached)" if build.get("cached") else ""),
            faiss, recall,
        ])
    out += _table(["chunks", "sentences", "server runs", "/ask ms p50/p95/p99",
                   "search ms p50/p95/p99", "**baseline: embed alone** ms",
                   "**baseline: rank_bm25 + numpy search** ms", "speed-up (p50)",
                   "RSS MB start → after", "index MB", "cold start", "synthetic build",
                   "FAISS index", "recall@10 vs exact"], rows)
    out += ["### Per stage at each size (ms, p50 / p95 / p99)", ""]
    keys = [k for k in STAGES if any(k in s["stages_ms"] for s in sizes)]
    out += _table(["chunks", *keys],
                  [[s["size"], *(_pct(s["stages_ms"].get(k)) for k in keys)] for s in sizes])
    out += [f"- **{s['size']:,} chunks failed**: {s['error']}" for s in failed]
    return out + ([""] if failed else [])


def concurrency_section(part: Json) -> list[str]:
    out = ["## Concurrency", ""] + _meta(part)
    out += _table(
        ["clients", "seconds × runs", "throughput req/s", "p50 ms", "p95 ms", "errors",
         f"**baseline: embedding alone, {part['cores']} processes** queries/s"],
        [[part["clients"], f"{part['seconds']:g} × {part['runs']}", part["throughput_rps"],
          part["p50_ms"], part["p95_ms"], part["errors"], part["embedding_only_qps"]]])
    return out


def soak_section(part: Json) -> list[str]:
    out = ["## Memory over many questions", ""] + _meta(part)
    out += _table(
        ["questions", "errors", "RSS after start MB", "after warm-up MB", "end MB", "max MB",
         "growth after warm-up MB", "/ask ms p50/p95/p99"],
        [[part["questions"], part["errors"], part["rss_after_start_mb"],
          part["rss_after_warm_up_mb"], part["rss_end_mb"], part["rss_max_mb"],
          part["growth_after_warm_up_mb"], _pct(part["ask_ms"])]])
    return out


def milvus_section(part: Json) -> list[str]:
    out = ["## Milvus backend (milvus-lite) next to the embedded backend", ""] + _meta(part)
    out.append(
        "The scale part's synthetic indexes, published to a `milvus-lite server` process "
        "and served by a replica with `NOTESQA_MILVUS_URI`; the **baseline** is the embedded "
        f"backend on the same index and the same {part['questions']} questions, in the same "
        "run. milvus-lite searches by a Python scan, so its latency grows with the "
        "collection and says nothing of a Milvus cluster's; the replica's RSS is what "
        "carries over. Sizing for 10M chunks: docs/milvus-sizing.md.")
    out.append("")
    rows = []
    for s in part["sizes"]:
        for label, served in (("embedded (baseline)", s["embedded"]),
                              ("Milvus (milvus-lite)", s["milvus"])):
            rows.append([
                s["size"], label, served["runs"], _pct(served["ask_ms"]),
                _pct(served["stages_ms"].get("search")), _pct(served["embed_alone_ms"]),
                f"{_f(served['rss_after_start_mb'], 0)} → "
                f"{_f(served['rss_after_questions_mb'], 0)}",
                f"{_f(served['cold_start_s'], 1)} s",
                f"{_f(s['publish_s'])} s; engine RSS {_f(s['engine_rss_after_publish_mb'], 0)}"
                f" → {_f(s['engine_rss_after_questions_mb'], 0)} MB"
                if label.startswith("Milvus") else "–",
            ])
    out += _table(["chunks", "backend", "server runs", "/ask ms p50/p95/p99",
                   "search ms p50/p95/p99", "embed alone ms", "replica RSS MB start → after",
                   "cold start", "publish (all rows) and milvus-lite's own RSS"], rows)
    return out


SECTIONS = {"build": build_section, "latency": latency_section, "scale": scale_section,
            "concurrency": concurrency_section, "soak": soak_section,
            "milvus": milvus_section}


def render(results: Json) -> str:
    mach = results.get("machine", {})
    lines = [
        "# Performance",
        "",
        "Generated by `python -m bench` (bench/); not a test, not run in CI. Every figure is "
        "a median over runs or p50/p95/p99 over many requests, next to a **baseline** "
        "measured in the same run. Raw figures: the JSON file next to this one.",
        "",
        "## Machine (latest run)",
        "",
        f"- CPU: {mach.get('cpu', '?')}; nproc {mach.get('nproc', '?')} "
        f"(usable {mach.get('affinity', '?')}); RAM {mach.get('ram_gb', '?')} GB",
        f"- Load average at start: {mach.get('load_average', '?')}",
        f"- Date: {mach.get('date', '?')}; git commit `{mach.get('git_commit', '?')}`; "
        f"Python {mach.get('python', '?')}; {mach.get('platform', '?')}",
        f"- Thread settings: {mach.get('env') or 'none set'}",
        f"- Command: `{results.get('command', '?')}`",
        "",
    ]
    for name, section in SECTIONS.items():
        if name in results.get("parts", {}):
            lines += section(results["parts"][name])
    return "\n".join(lines).rstrip() + "\n"
