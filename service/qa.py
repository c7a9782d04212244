"""The question-answering pipeline shared by the API, the CLI and the Slack bot:
rewrite follow-ups -> read the question -> retrieve -> decide whether the notes answer ->
compose -> attach YAML examples and commands."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from urllib.parse import quote

from indexer.bilingual import EnglishToChinese
from indexer.embedding import Embedder
from indexer.settings import Settings
from indexer.store import StoredIndex
from indexer.tokenization import Tokenizer
from indexer.types import YamlExample
from service.abstention import (
    AbstentionWeights,
    Confidence,
    absent_terms,
    assess,
    unknown_objects,
    unknown_terms,
)
from service.answer import (
    AnswerWeights,
    Sentence,
    compose,
    off_topic,
    render,
    score_sentences,
    sentences_of,
)
from service.commands import Introduced, introduced_blocks, match_commands
from service.followup import Turn, rewrite
from service.glossary import Glossary
from service.query import QueryAnalysis, QueryAnalyzer
from service.rerank import Reranker
from service.retrieval import FusionConfig, Hit, Mode, Retrieval, Retriever
from service.schemas import (
    AskResponse,
    Citation,
    CommandExampleOut,
    Scores,
    Snippet,
    Suggestion,
    YamlExampleOut,
)
from service.search_backend import EmbeddedBackend, SearchBackend
from service.yaml_match import match_examples

RERANK_POOL = 10  # chunks the reranker sees; it picks the top_k among them
SPARE_HITS = 3  # retrieved beyond top_k, for questions whose best chunks hold no prose
SENTENCE_CACHE_SIZE = 4096  # sentences whose words are kept (~1 KB each)

NOT_FOUND_ANSWER = (
    "笔记中没有找到能回答这个问题的内容。可以换个说法，或把相关笔记加入语料后重新索引。"
)


class QAEngine:
    def __init__(
        self,
        index: StoredIndex | SearchBackend,
        embedder: Embedder,
        tokenizer: Tokenizer,
        glossary: Glossary,
        settings: Settings,
        weights: AnswerWeights | None = None,
        abstention: AbstentionWeights | None = None,
        reranker: Reranker | None = None,
    ):
        self.reranker = reranker
        backend: SearchBackend = (
            EmbeddedBackend(index) if isinstance(index, StoredIndex) else index
        )
        self.backend = backend
        self.weights = weights or AnswerWeights()
        self.abstention = abstention or AbstentionWeights()
        self.settings = settings
        self.glossary = glossary
        self.tokenizer = tokenizer
        # The sentences of the sections people ask about come back question after
        # question; jieba on each was half of the answer stage.
        self._sentence_words = lru_cache(maxsize=SENTENCE_CACHE_SIZE)(
            lambda text: frozenset(tokenizer.tokenize(text))
        )
        self.retriever = Retriever(
            backend,
            embedder,
            tokenizer,
            glossary,
            FusionConfig.from_settings(settings),
        )
        vocab = backend.vocabulary
        self.analyzer = QueryAnalyzer(
            tokenizer,
            glossary,
            vocab,
            # Indexes built before the table was stored with them get it computed (~1 s).
            backend.english or EnglishToChinese.for_vocabulary(vocab),
        )
        self._idf = backend.idf
        self._absent_terms = absent_terms(glossary, backend.mentions)
        self._vocabulary = vocab
        # What each section is about: the objects its own heading names ("Service 对象").
        # Filled as headings are met: doing all ~1,500 handbook headings up front costs 0.4 s
        # of start-up.
        self._heading_subjects: dict[str, frozenset[str]] = {}

    def analyze(self, question: str) -> QueryAnalysis:
        return self.analyzer.analyze(question)

    def confidence(
        self, query: QueryAnalysis, hits: Sequence[Hit], own_dense: float | None = None
    ) -> Confidence:
        """How sure we are that the notes answer (see `service.abstention`). `own_dense`,
        when given, is the question's own best similarity (see `Retrieval.own_dense`).
        Only the user's own words count, not the glossary's expansion."""
        unknown = unknown_terms(query.forms, self._vocabulary)
        dense_values = [h.dense for h in hits if h.dense is not None]
        if own_dense is None and dense_values:
            own_dense = max(dense_values)
        english = self.analyzer.english if query.english else None
        return assess(
            query.forms,
            own_dense,
            self.backend.terms([h.row for h in hits[:3]]),
            unknown,
            self._idf,
            self.abstention,
            unknown_objects(query, self._absent_terms),
            ordinary=[t for t in unknown if english and english.is_ordinary(t)],
            english_question=query.english,
        )

    def threshold(self, mode: Mode, english: bool = False) -> float:
        if mode == "bm25":
            return self.settings.abstain_threshold_bm25
        margin = self.settings.abstain_english_margin if english else 0.0
        if mode == "dense":
            return self.settings.abstain_threshold_dense - margin
        return self.settings.abstain_threshold - margin

    def retrieve(
        self, query: str | QueryAnalysis, mode: Mode = "hybrid", limit: int = 10
    ) -> Retrieval:
        """The ranked chunks for a standalone query: retrieval, then the reranker when one
        is configured. The evaluation judges this ranking, so a reranker shows in hit@k."""
        analysis = self.analyze(query) if isinstance(query, str) else query
        pool = max(RERANK_POOL, limit) if self.reranker else limit
        retrieval = self.retriever.search(analysis, mode=mode, limit=pool)
        if self.reranker is not None:
            t_rerank = time.perf_counter()
            retrieval.hits = self.reranker.rerank(analysis.text, retrieval.hits)[:limit]
            retrieval.timings_ms["rerank"] = (time.perf_counter() - t_rerank) * 1000
        return retrieval

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
    ) -> AskResponse:
        started = time.perf_counter()
        top_k = top_k or self.settings.top_k
        rewritten = rewrite(question, history, self.glossary)
        t_analyze = time.perf_counter()
        query = self.analyze(rewritten)
        analyze_ms = (time.perf_counter() - t_analyze) * 1000
        # A few more chunks than are cited: where the best ones hold no prose (only
        # manifests), the answer's sentences come from the next.
        retrieval = self.retrieve(query, mode, limit=max(top_k, 3) + SPARE_HITS)
        conf = self.confidence(query, retrieval.hits, retrieval.own_dense)
        timings = {"analyze": analyze_ms, **retrieval.timings_ms}
        timings["search"] = timings.get("bm25", 0.0) + timings.get("dense", 0.0) + timings.get(
            "fuse", 0.0
        )
        found = bool(retrieval.hits) and conf.value >= self.threshold(mode, query.english)
        chosen: list[Sentence] = []
        hits = retrieval.hits[:top_k]
        if found:
            t_answer = time.perf_counter()
            chosen, introduced = self._compose(query, retrieval, hits, mode)
            timings["answer"] = (time.perf_counter() - t_answer) * 1000
            # `found: true` never comes with an empty answer.
            found = bool(chosen)
        if not found:
            timings["total"] = (time.perf_counter() - started) * 1000
            return AskResponse(
                question=question,
                rewritten_query=rewritten,
                found=False,
                answer=NOT_FOUND_ANSWER,
                confidence=conf.value,
                snippets=[],
                citations=[],
                yaml_examples=[],
                suggestions=_suggestions(retrieval.hits),
                timings_ms=_round(timings),
            )

        # Sentences from the spare chunks cite them too.
        cited_rows = list(dict.fromkeys([h.row for h in hits] + [
            retrieval.hits[s.hit_rank].row for s in chosen
        ]))
        by_row = {h.row: h for h in retrieval.hits}
        citations = [self._citation(cid, by_row[row]) for cid, row in enumerate(cited_rows, 1)]
        snippets = [
            Snippet(
                text=_snippet_text(by_row[row]), citation=cid, score=round(by_row[row].fused, 6)
            )
            for cid, row in enumerate(cited_rows, 1)
        ]
        row_to_citation = {row: cid for cid, row in enumerate(cited_rows, 1)}

        def cite(row: int) -> int:
            if row not in row_to_citation:
                # Cited for its example only: it was not among the retrieved chunks.
                row_to_citation[row] = len(citations) + 1
                outside = Hit(row, self.backend.chunks[row], 0.0, None, None, ())
                citations.append(self._citation(len(citations) + 1, outside))
            return row_to_citation[row]

        t_yaml = time.perf_counter()
        matched = match_examples(
            query,
            cited_rows,
            self.backend.yaml,
            self.backend.example_chunk,
            {row: self.backend.chunks[row].yaml_ids for row in cited_rows},
            by_kind=self.backend.examples_by_kind,
        )
        yaml_ids = [m.example_id for m in matched]
        # The manifest a chosen lead-in introduces ("示例如下：") goes with the answer,
        # after those of the kinds asked for, and not when it is of another kind.
        wanted = {k.lower() for k in query.example_kinds}
        for block in introduced:
            if block.kind != "yaml" or block.id in yaml_ids:
                continue
            if not wanted or (self.backend.yaml[block.id].kind or "").lower() in wanted:
                yaml_ids.append(block.id)
        examples = [
            _yaml_out(self.backend.yaml[i], cite(self.backend.example_chunk[i]))
            for i in yaml_ids[:3]
        ]
        timings["yaml"] = (time.perf_counter() - t_yaml) * 1000
        commands = [
            CommandExampleOut(
                language=self.backend.commands[c.id].language,
                text=self.backend.commands[c.id].text,
                citation=cite(c.chunk_row),
            )
            for c in match_commands(
                query, cited_rows, [retrieval.hits[s.hit_rank].row for s in chosen],
                introduced, self.backend.chunks, self.backend.commands,
                self.backend.neighbours,
            )
        ]
        timings["total"] = (time.perf_counter() - started) * 1000
        return AskResponse(
            question=question,
            rewritten_query=rewritten,
            found=True,
            answer=render(_cited(chosen, retrieval.hits, row_to_citation)),
            confidence=conf.value,
            snippets=snippets,
            citations=citations,
            yaml_examples=examples,
            command_examples=commands,
            timings_ms=_round(timings),
        )

    def _compose(
        self, query: QueryAnalysis, retrieval: Retrieval, hits: Sequence[Hit], mode: Mode
    ) -> tuple[list[Sentence], list[Introduced]]:
        """The answer's sentences (`hit_rank` indexes `retrieval.hits`) and the code blocks
        its lead-in lines introduce."""
        chosen: list[Sentence] = []
        introduced: list[Introduced] = []
        # Off by keyword ranking alone: there the sections about neighbouring objects are
        # too often the right ones (measured: bm25-mode answer hit rate falls 1-9 points).
        off = (
            off_topic(
                query.hinted_subjects,
                [self._subjects_of(hit.chunk.heading) for hit in retrieval.hits],
            )
            if mode != "bm25"
            else set()
        )
        for pool in (hits, retrieval.hits[len(hits):]):
            if not pool:
                continue
            first = retrieval.hits.index(pool[0])
            candidates: list[Sentence] = []
            # One read for the pool: a round trip per chunk where sentences are remote.
            scored_sentences = self.backend.sentences(
                [hit.row for hit in pool], retrieval.query_vector
            )
            for offset, hit in enumerate(pool):
                rank = first + offset
                for record, similarity in scored_sentences[hit.row]:
                    candidates.extend(sentences_of(hit, rank, rank + 1, [record],
                                                   None if similarity is None else [similarity]))
            scored = score_sentences(
                query, candidates, self._sentence_words, self._idf, self.weights, off,
            )
            chosen = compose(
                scored, self.settings.max_answer_chars, self.weights,
                list_section=_announced_list(query, retrieval.hits) if pool is hits else [],
                section_of=lambda s: _section(retrieval.hits[s.hit_rank]),
                wants_list=query.asks_list,
            )
            chosen, introduced = introduced_blocks(
                chosen, [h.row for h in retrieval.hits], self.backend.chunks,
                self.backend.yaml, self.backend.commands,
            )
            if chosen:
                break
        return chosen, introduced

    def _subjects_of(self, heading: Sequence[str]) -> frozenset[str]:
        if not heading:
            return frozenset()
        if heading[-1] not in self._heading_subjects:
            self._heading_subjects[heading[-1]] = self.glossary.subjects(heading[-1])
        return self._heading_subjects[heading[-1]]

    def _citation(self, cid: int, hit: Hit) -> Citation:
        chunk = hit.chunk
        return Citation(
            id=cid,
            source=chunk.source,
            heading=list(chunk.heading),
            lines=chunk.lines,
            url=note_url(chunk.source, chunk.lines),
            score=round(hit.fused, 6),
            matched_terms=list(hit.matched_terms),
            scores=Scores(
                bm25=None if hit.bm25 is None else round(hit.bm25, 4),
                dense=None if hit.dense is None else round(hit.dense, 4),
                fused=round(hit.fused, 6),
            ),
        )

    def warm_up(self) -> None:
        self.ask("预热：Kubernetes 是什么？")


def _announced_list(query: QueryAnalysis, hits: Sequence[Hit]) -> list[int]:
    """Citation ids of the top section's chunks when the section is a list its heading
    announces ("Kubernetes的主要作用包括：") and the question asks for that list."""
    if not hits or not query.asks_list:
        return []
    top = hits[0].chunk
    if not top.heading or not top.heading[-1].rstrip().endswith(("：", ":")):
        return []
    return [
        rank + 1
        for rank, hit in enumerate(hits)
        if hit.chunk.source == top.source and hit.chunk.heading == top.heading
    ]


def _section(hit: Hit) -> tuple[str, tuple[str, ...]]:
    return hit.chunk.source, hit.chunk.heading


def _cited(
    chosen: Sequence[Sentence], hits: Sequence[Hit], citation_of: dict[int, int]
) -> list[Sentence]:
    """The sentences with the citation ids of the response (spare chunks are cited after
    the top ones)."""
    return [replace(s, citation=citation_of[hits[s.hit_rank].row]) for s in chosen]


def _yaml_out(ex: YamlExample, citation: int) -> YamlExampleOut:
    return YamlExampleOut(
        kind=ex.kind,
        api_version=ex.api_version,
        name=ex.name,
        yaml=ex.yaml,
        valid=ex.valid,
        citation=citation,
        k8s_valid=ex.k8s_valid,
        problems=list(ex.problems),
    )


def _suggestions(hits: Sequence[Hit], limit: int = 3) -> list[Suggestion]:
    """The closest distinct sections, so a declined question still shows where to look."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = []
    for hit in hits:
        key = (hit.chunk.source, tuple(hit.chunk.heading))
        if key in seen or not hit.chunk.heading:
            continue
        seen.add(key)
        out.append(
            Suggestion(
                source=hit.chunk.source, heading=list(hit.chunk.heading), lines=hit.chunk.lines,
                url=note_url(hit.chunk.source, hit.chunk.lines),
            )
        )
        if len(out) == limit:
            break
    return out


def note_url(source: str, lines: tuple[int, int]) -> str:
    return f"/notes/{quote(source)}#L{lines[0]}-L{lines[1]}"


def _snippet_text(hit: Hit, limit: int = 240) -> str:
    text = " ".join(line for line, _ in hit.chunk.prose_lines()).strip() or hit.chunk.text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _round(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}
