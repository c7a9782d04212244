"""Answer-quality evaluation over a labelled JSONL question set (`notesqa eval`)."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.bilingual import is_english
from service.followup import Turn
from service.qa import QAEngine
from service.retrieval import Mode
from service.schemas import AskResponse


class EvalFileError(ValueError):
    """A question file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EvalCase:
    id: str
    question: str
    history: tuple[Turn, ...]
    answerable: bool
    source: str | None
    phrase: str | None
    yaml_kind: str | None
    tags: tuple[str, ...]
    # A verbatim piece of the command the answer's command examples must hold.
    command: str | None = None
    # Source lines (inclusive) of the passage about what was asked: answer sentences cited
    # from elsewhere are off the question (answer precision).
    span: tuple[int, int] | None = None

    @property
    def english(self) -> bool:
        return "english" in self.tags or is_english(self.question)


@dataclass(frozen=True)
class CaseResult:
    case: EvalCase
    found: bool
    answer: str
    answer_hit: bool
    rank: int | None  # 1-based rank of the first chunk holding the expected phrase
    yaml_kind: str | None
    latency_ms: float
    rewritten_query: str
    command_hit: bool = False
    precision: float | None = None  # share of answer sentences inside the labelled span


@dataclass
class EvalReport:
    mode: str
    questions: int
    answerable: int
    answer_hit_rate: float
    hit_at_1: float
    hit_at_3: float
    mrr_at_10: float
    yaml_kind_accuracy: float | None
    command_hit_rate: float | None  # rows labelled with a command
    answer_precision: float | None  # mean over found rows labelled with a span
    declined_rate: float  # answerable questions answered "not found"
    abstention_precision: float
    abstention_recall: float
    # Abstention by the question's language: "en" and "zh" -> (precision, recall).
    abstention_by_language: dict[str, tuple[float, float]]
    multi_turn_hit_rate: float | None
    median_answer_chars: float
    p50_ms: float
    p95_ms: float
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


REQUIRED = ("id", "question", "answerable")


def load_cases(path: Path) -> list[EvalCase]:
    cases: list[EvalCase] = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"{path}: 无法读取：{exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{number}: 不是合法的 JSON：{exc.msg}") from None
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise EvalFileError(f"{path}:{number}: 缺少字段 {', '.join(missing)}")
        if row["answerable"] and not row.get("phrase"):
            raise EvalFileError(f"{path}:{number}: 可回答的问题需要 phrase")
        span = row.get("span")
        if span is not None and not (
            isinstance(span, list) and len(span) == 2 and all(isinstance(n, int) for n in span)
        ):
            raise EvalFileError(f"{path}:{number}: span 应为 [起始行, 结束行]")
        cases.append(
            EvalCase(
                id=str(row["id"]),
                question=str(row["question"]),
                history=tuple(Turn(t["role"], t["content"]) for t in row.get("history") or []),
                answerable=bool(row["answerable"]),
                source=row.get("source"),
                phrase=row.get("phrase"),
                yaml_kind=row.get("yaml_kind"),
                tags=tuple(row.get("tags") or ()),
                command=row.get("command"),
                span=(span[0], span[1]) if span else None,
            )
        )
    return cases


def _abstention(results: Sequence[CaseResult]) -> tuple[float, float]:
    """(precision, recall) of "not found": declined questions that were unanswerable, and
    unanswerable questions that were declined (1.0 when there is nothing to count)."""
    declined = [r for r in results if not r.found]
    unanswerable = [r for r in results if not r.case.answerable]
    return (
        _ratio(sum(not r.case.answerable for r in declined), len(declined)) if declined else 1.0,
        _ratio(sum(not r.found for r in unanswerable), len(unanswerable))
        if unanswerable else 1.0,
    )


def _ratio(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


def run_case(engine: QAEngine, case: EvalCase, mode: Mode) -> CaseResult:
    started = time.perf_counter()
    response = engine.ask(case.question, top_k=3, mode=mode, history=case.history)
    latency = (time.perf_counter() - started) * 1000
    rank = None
    if case.answerable and case.phrase:
        # Ranking is judged on the engine's top 10 (reranker included) for the standalone
        # query; the response itself only carries top_k citations.
        ranked = engine.retrieve(response.rewritten_query, mode=mode, limit=10).hits
        for position, hit in enumerate(ranked, start=1):
            chunk = hit.chunk
            haystack = chunk.text + "\n" + " ".join(chunk.heading)
            if chunk.source == case.source and case.phrase in haystack:
                rank = position
                break
    # For a YAML or command request the examples are the answer, so the phrase may be
    # found there.
    answer_text = response.answer
    if case.yaml_kind:
        answer_text += "\n" + "\n".join(ex.yaml for ex in response.yaml_examples)
    if case.command:
        answer_text += "\n" + "\n".join(c.text for c in response.command_examples)
    return CaseResult(
        case=case,
        found=response.found,
        answer=response.answer,
        answer_hit=bool(
            case.answerable and response.found and case.phrase and case.phrase in answer_text
        ),
        rank=rank,
        yaml_kind=response.yaml_examples[0].kind if response.yaml_examples else None,
        latency_ms=latency,
        rewritten_query=response.rewritten_query,
        command_hit=bool(
            case.command and any(case.command in c.text for c in response.command_examples)
        ),
        precision=_precision(engine, case, response),
    )


_SEGMENT = re.compile(r"(.+?)\[(\d+)\]", re.DOTALL)


def _precision(engine: QAEngine, case: EvalCase, response: AskResponse) -> float | None:
    """Share of the answer's sentences whose source line lies in the labelled span. A
    sentence's line is found by its text among the indexed sentences of the chunk it
    cites (a one-line command written into a lead-in line still starts with the line)."""
    if not (case.answerable and case.span and response.found):
        return None
    citations = {c.id: c for c in response.citations}
    segments = _SEGMENT.findall(response.answer)
    if not segments:
        return None
    inside = 0
    for text, cid in segments:
        citation = citations.get(int(cid))
        if citation is None or citation.source != case.source:
            continue
        lines = [
            s.line
            for s in engine.backend.sentences_between(citation.source, *citation.lines)
            if text.startswith(s.text.rstrip("…"))
        ] or [citation.lines[0]]
        if case.span[0] <= lines[0] <= case.span[1]:
            inside += 1
    return inside / len(segments)


def evaluate(engine: QAEngine, cases: Sequence[EvalCase], mode: Mode) -> EvalReport:
    results = [run_case(engine, case, mode) for case in cases]
    answerable = [r for r in results if r.case.answerable]
    yaml_rows = [r for r in answerable if r.case.yaml_kind]
    multi = [r for r in answerable if r.case.history]
    command_rows = [r for r in answerable if r.case.command]
    precisions = [r.precision for r in answerable if r.precision is not None]
    lengths = [len(r.answer) for r in results if r.found]
    failures = [
        {
            "id": r.case.id,
            "question": r.case.question,
            "rewritten_query": r.rewritten_query,
            "expected": r.case.phrase if r.case.answerable else "(不应回答)",
            "found": r.found,
            "rank": r.rank,
            "answer": r.answer[:160],
        }
        for r in results
        if (r.case.answerable and not r.answer_hit) or (not r.case.answerable and r.found)
    ]
    return EvalReport(
        mode=mode,
        questions=len(results),
        answerable=len(answerable),
        answer_hit_rate=_ratio(sum(r.answer_hit for r in answerable), len(answerable)),
        hit_at_1=_ratio(sum(r.rank == 1 for r in answerable), len(answerable)),
        hit_at_3=_ratio(sum(r.rank is not None and r.rank <= 3 for r in answerable),
                        len(answerable)),
        mrr_at_10=round(
            sum(1 / r.rank for r in answerable if r.rank) / len(answerable), 4
        ) if answerable else 0.0,
        yaml_kind_accuracy=_ratio(
            sum((r.yaml_kind or "").lower() == (r.case.yaml_kind or "").lower()
                for r in yaml_rows),
            len(yaml_rows),
        ) if yaml_rows else None,
        command_hit_rate=_ratio(sum(r.command_hit for r in command_rows), len(command_rows))
        if command_rows else None,
        answer_precision=round(statistics.mean(precisions), 4) if precisions else None,
        declined_rate=_ratio(sum(not r.found for r in answerable), len(answerable)),
        abstention_precision=_abstention(results)[0],
        abstention_recall=_abstention(results)[1],
        abstention_by_language={
            language: _abstention([r for r in results if r.case.english == (language == "en")])
            for language in ("zh", "en")
        },
        multi_turn_hit_rate=_ratio(sum(r.answer_hit for r in multi), len(multi))
        if multi else None,
        median_answer_chars=float(statistics.median(lengths)) if lengths else 0.0,
        p50_ms=_percentile([r.latency_ms for r in results], 0.5),
        p95_ms=_percentile([r.latency_ms for r in results], 0.95),
        failures=failures,
    )
