"""Run the benchmark and write docs/performance.md plus its raw figures as JSON.

    .venv/bin/python -m bench --handbook ../shared/corpora/kubernetes-handbook \\
        --out docs/performance.md

Parts (`--only`, comma-separated; default all): build, latency, scale, concurrency, soak,
milvus (the Milvus backend on milvus-lite next to the embedded one, 10k and 100k chunks).
A part re-run replaces only its own figures in the JSON; the Markdown is rendered from all.
Rough durations on 2 quiet cores with the defaults (--runs 3, 200 questions): build 15-25
min (three cold handbook builds and three raw encodes), latency 5 min (+3 min the first
time, to index corpus/ + handbook into --work-dir), scale 10k 3 min, 100k 5-8 min, 1M 30-60
min (synthetic build ~5 min and ~12 GB once; the cold start dominates where the index
does not store per-chunk tokens: 262 s at 100k on a busy machine with format 4),
concurrency 5 min, soak 3 min. Quick check: --only scale --sizes 3000 --questions 20.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import ROOT, Json, Options, machine, say

PARTS = ("build", "latency", "scale", "concurrency", "soak", "milvus")


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--handbook", type=Path,
                   help="the Kubernetes handbook folder (read, never copied into the repo)")
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    p.add_argument("--json", type=Path, help="raw figures (default: --out with .json)")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {','.join(PARTS)}")
    p.add_argument("--sizes", type=_ints, default=[10_000, 100_000, 1_000_000],
                   help="synthetic index sizes in chunks (scale part)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    p.add_argument("--scale-runs", type=int,
                   help="server runs per scale size (default: --runs up to 100k chunks, 1 above)")
    p.add_argument("--questions", type=int, default=200, help="questions per latency run")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30, help="concurrency run length")
    p.add_argument("--soak-questions", type=int, default=2000)
    p.add_argument("--noise", type=float, default=0.1, help="synthetic vectors' noise norm")
    p.add_argument("--baseline-max-chunks", type=int, default=1_000_000,
                   help="skip the rank_bm25 baseline above this many chunks (memory)")
    p.add_argument("--baseline-sample", type=int, default=50,
                   help="questions for the baseline at 1M chunks and above")
    p.add_argument("--work-dir", type=Path,
                   default=Path.home() / ".cache" / "notes-qa" / "bench",
                   help="indexes built for the benchmark (synthetic ones are reused)")
    p.add_argument("--model", default="default")
    p.add_argument("--cache-dir", type=Path, help="model cache (default: the service's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    parts = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {PARTS}")
    if args.handbook is None:
        say("no --handbook: the real index is corpus/ alone (the handbook figures are missing)")
    opts = Options(
        handbook=args.handbook.resolve() if args.handbook else None,
        corpus=args.corpus.resolve(), work_dir=args.work_dir.resolve(), model=args.model,
        cache_dir=args.cache_dir, runs=args.runs, questions=args.questions, sizes=args.sizes,
        clients=args.clients, seconds=args.seconds, soak_questions=args.soak_questions,
        baseline_max_chunks=args.baseline_max_chunks, baseline_sample=args.baseline_sample,
    )
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.json or args.out.with_suffix(".json")
    results: Json = {}
    if json_path.exists():
        results = json.loads(json_path.read_text("utf-8"))
    command = "python -m bench " + shlex.join(argv)
    mach = machine()
    results.update(machine=mach, command=command)
    results.setdefault("parts", {})
    say(f"machine: {mach['cpu']}, {mach['nproc']} cores, load {mach['load_average']}")
    failed = []
    for name in parts:
        say(f"== {name}")
        started = time.perf_counter()
        try:
            figures = _run(name, opts, args)
        except Exception:  # one broken part must not lose the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        figures["meta"] = {"machine": machine() | {"load_average": mach["load_average"]},
                           "command": command,
                           "seconds": round(time.perf_counter() - started, 1)}
        results["parts"][name] = figures
        _write(results, json_path, args.out)
        say(f"== {name} done in {time.perf_counter() - started:.0f} s")
    _write(results, json_path, args.out)
    say(f"wrote {args.out} and {json_path}")
    if failed:
        raise SystemExit(f"failed parts: {', '.join(failed)}")


def _run(name: str, opts: Options, args: argparse.Namespace) -> Json:
    module: Any
    if name == "build":
        from bench import build as module
    elif name == "latency":
        from bench import latency as module
    elif name == "scale":
        from bench import scale

        return scale.run(opts, noise=args.noise, scale_runs=args.scale_runs)
    elif name == "milvus":
        from bench import milvus

        return milvus.run(opts, noise=args.noise)
    elif name == "concurrency":
        from bench import concurrency as module
    else:
        from bench import soak as module
    result: Json = module.run(opts)
    return result


def _write(results: Json, json_path: Path, md_path: Path) -> None:
    from bench.report import render

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, ensure_ascii=False, indent=1), "utf-8")
    md_path.write_text(render(results), "utf-8")


if __name__ == "__main__":
    main()
