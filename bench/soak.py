"""Memory over many questions: one server answers N questions (the tuning questions,
cycled) sequentially; its RSS is read every 100 questions. Growth is counted from the end
of the warm-up (the first tenth), so caches filling up at the start are not a leak."""

from __future__ import annotations

import time

import httpx

from bench.common import Json, Options, questions, real_index, rss_mb, say, serving, summary


def run(opts: Options) -> Json:
    index_dir = real_index(opts)
    asked = questions(opts.soak_questions)
    series: list[tuple[int, float]] = []
    latencies: list[float] = []
    errors = 0
    with serving(opts, index_dir, opts.work_dir / "soak") as server:
        start_rss = rss_mb(server.proc.pid)
        series.append((0, start_rss))
        say(f"soak: {len(asked)} questions")
        with httpx.Client(base_url=server.base, timeout=120) as http:
            for i, q in enumerate(asked, start=1):
                t = time.perf_counter()
                r = http.post("/ask", json={"question": q})
                latencies.append((time.perf_counter() - t) * 1000)
                errors += r.status_code != 200
                if i % 100 == 0 or i == len(asked):
                    series.append((i, rss_mb(server.proc.pid)))
    warm_at = max(1, len(asked) // 10)
    warm = next((mb for n, mb in series if n >= warm_at), start_rss)
    end = series[-1][1]
    return {
        "questions": len(asked),
        "errors": errors,
        "rss_after_start_mb": start_rss,
        "rss_after_warm_up_mb": warm,
        "rss_end_mb": end,
        "rss_max_mb": max(mb for _, mb in series),
        "growth_after_warm_up_mb": round(end - warm, 1),
        "ask_ms": summary(latencies),
        "series": series,
    }
