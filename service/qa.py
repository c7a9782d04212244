"""The question-answering pipeline shared by the API, the CLI and the Slack bot:
rewrite follow-ups -> retrieve -> decide whether the notes answer -> compose -> attach YAML."""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import quote

from indexer.bilingual import is_english
from indexer.embedding import Embedder
from indexer.settings import Settings
from indexer.store import StoredIndex
from indexer.tokenization import Tokenizer
from service.abstention import (
    AbstentionWeights,
    Confidence,
    absent_terms,
    assess,
    synonyms,
    unknown_objects,
    unknown_terms,
)
from service.answer import (
    AnswerWeights,
    asks_for_list,
    compose,
    idf_table,
    off_topic,
    render,
    score_sentences,
    sentences_of,
)
from service.followup import Turn, rewrite
from service.glossary import Glossary
from service.rerank import Reranker
from service.retrieval import FusionConfig, Hit, Mode, Retrieval, Retriever
from service.schemas import (
    AskResponse,
    Citation,
    Scores,
    Snippet,
    Suggestion,
    YamlExampleOut,
)
from service.yaml_match import match_examples

RERANK_POOL = 10  # chunks the reranker sees; it picks the top_k among them

NOT_FOUND_ANSWER = (
    "笔记中没有找到能回答这个问题的内容。可以换个说法，或把相关笔记加入语料后重新索引。"
)


class QAEngine:
    def __init__(
        self,
        index: StoredIndex,
        embedder: Embedder,
        tokenizer: Tokenizer,
        glossary: Glossary,
        settings: Settings,
        weights: AnswerWeights | None = None,
        abstention: AbstentionWeights | None = None,
        reranker: Reranker | None = None,
    ):
        self.reranker = reranker
        self.weights = weights or AnswerWeights()
        self.abstention = abstention or AbstentionWeights()
        self.index = index
        self.settings = settings
        self.glossary = glossary
        self.tokenizer = tokenizer
        self.retriever = Retriever(
            index,
            embedder,
            tokenizer,
            glossary,
            FusionConfig.from_settings(settings),
        )
        self._idf = idf_table(self.retriever.chunk_tokens)
        self._absent_terms = absent_terms(
            glossary,
            "\n".join(" ".join(c.heading) + "\n" + c.text for c in index.chunks).lower(),
        )
        self._vocabulary: frozenset[str] = frozenset().union(*self.retriever.chunk_tokens)
        # What each section is about: the objects its own heading names ("Service 对象").
        # Filled as headings are met: doing all ~1,500 handbook headings up front costs 0.4 s
        # of start-up.
        self._heading_subjects: dict[str, frozenset[str]] = {}
        self._example_chunk = [0] * len(index.yaml)
        self._chunk_examples: dict[int, Sequence[int]] = {}
        for row, chunk in enumerate(index.chunks):
            if chunk.yaml_ids:
                self._chunk_examples[row] = chunk.yaml_ids
            for i in chunk.yaml_ids:
                self._example_chunk[i] = row

    def confidence(
        self, query_tokens: Sequence[str], hits: Sequence[Hit], query: str = "",
        own_dense: float | None = None,
    ) -> Confidence:
        """How sure we are that the notes answer (see `service.abstention`). `own_dense`,
        when given, is the question's own best similarity (see `Retrieval.own_dense`)."""
        english = self.retriever.english if is_english(query) else None
        forms = synonyms(
            query_tokens, self.glossary, self.tokenizer.tokenize, query,
            translate=english.translate if english else lambda word: (),
        )
        unknown = unknown_terms(forms, self._vocabulary)
        dense_values = [h.dense for h in hits if h.dense is not None]
        if own_dense is None and dense_values:
            own_dense = max(dense_values)
        return assess(
            forms,
            own_dense,
            [self.retriever.chunk_tokens[h.row] for h in hits[:3]],
            unknown,
            self._idf,
            self.abstention,
            unknown_objects(query, self.glossary, self._absent_terms),
            ordinary=[t for t in unknown if english and english.is_ordinary(t)],
        )

    def threshold(self, mode: Mode) -> float:
        if mode == "bm25":
            return self.settings.abstain_threshold_bm25
        if mode == "dense":
            return self.settings.abstain_threshold_dense
        return self.settings.abstain_threshold

    def retrieve(self, query: str, mode: Mode = "hybrid", limit: int = 10) -> Retrieval:
        """The ranked chunks for a standalone query: retrieval, then the reranker when one
        is configured. The evaluation judges this ranking, so a reranker shows in hit@k."""
        pool = max(RERANK_POOL, limit) if self.reranker else limit
        retrieval = self.retriever.search(query, mode=mode, limit=pool)
        if self.reranker is not None:
            t_rerank = time.perf_counter()
            retrieval.hits = self.reranker.rerank(query, retrieval.hits)[:limit]
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
        query = rewrite(question, history, self.glossary)
        retrieval = self.retrieve(query, mode, limit=max(top_k, 3))
        # Confidence uses only the user's own words, not the glossary's expansion.
        conf = self.confidence(retrieval.own_tokens, retrieval.hits, query, retrieval.own_dense)
        timings = dict(retrieval.timings_ms)
        timings["search"] = timings.get("bm25", 0.0) + timings.get("dense", 0.0) + timings.get(
            "fuse", 0.0
        )
        found = bool(retrieval.hits) and conf.value >= self.threshold(mode)
        if not found:
            timings["total"] = (time.perf_counter() - started) * 1000
            return AskResponse(
                question=question,
                rewritten_query=query,
                found=False,
                answer=NOT_FOUND_ANSWER,
                confidence=conf.value,
                snippets=[],
                citations=[],
                yaml_examples=[],
                suggestions=_suggestions(retrieval.hits),
                timings_ms=_round(timings),
            )

        t_answer = time.perf_counter()
        hits = retrieval.hits[:top_k]
        mentioned = [m.term.name for m in self.glossary.mentions(query) if m.strong]
        candidates = []
        for rank, hit in enumerate(hits):
            sentence_rows = self.retriever.sentences_of_chunk[hit.row]
            records = [self.index.sentences[i] for i in sentence_rows]
            similarities = None
            if retrieval.query_vector is not None and sentence_rows:
                similarities = self.retriever.sentence_vectors[sentence_rows] @ (
                    retrieval.query_vector[0]
                )
            candidates.extend(sentences_of(hit, rank, rank + 1, records, similarities))
        # Off by keyword ranking alone: there the sections about neighbouring objects are
        # too often the right ones (measured: bm25-mode answer hit rate falls 1-9 points).
        off = (
            off_topic(
                self.glossary.subjects(query, hints=True),
                [self._subjects_of(hit.chunk.heading) for hit in hits],
            )
            if mode != "bm25"
            else set()
        )
        scored = score_sentences(
            query, retrieval.query_tokens, candidates, self.tokenizer.tokenize, self._idf,
            mentioned, self.weights, off,
        )
        chosen = compose(
            scored, self.settings.max_answer_chars, self.weights,
            list_section=_announced_list(query, hits),
        )
        citations = [self._citation(rank + 1, hit) for rank, hit in enumerate(hits)]
        snippets = [
            Snippet(text=_snippet_text(hit), citation=rank + 1, score=round(hit.fused, 6))
            for rank, hit in enumerate(hits)
        ]
        timings["answer"] = (time.perf_counter() - t_answer) * 1000

        t_yaml = time.perf_counter()
        # The corrected words too: "servcie" names Service.
        kinds = self.glossary.kinds(query + " " + " ".join(retrieval.own_tokens))
        matched = match_examples(
            query,
            kinds,
            [h.row for h in hits],
            self.index.yaml,
            self._example_chunk,
            self._chunk_examples,
        )
        row_to_citation = {hit.row: rank + 1 for rank, hit in enumerate(hits)}
        examples = []
        for m in matched:
            if m.chunk_row not in row_to_citation:
                # An example from outside the top chunks still cites where it lives.
                row_to_citation[m.chunk_row] = len(citations) + 1
                # Cited for its example only: it was not among the retrieved chunks.
                outside = Hit(m.chunk_row, self.index.chunks[m.chunk_row], 0.0, None, None, ())
                citations.append(self._citation(len(citations) + 1, outside))
            cid = row_to_citation[m.chunk_row]
            ex = m.example
            examples.append(
                YamlExampleOut(
                    kind=ex.kind,
                    api_version=ex.api_version,
                    name=ex.name,
                    yaml=ex.yaml,
                    valid=ex.valid,
                    citation=cid,
                    k8s_valid=ex.k8s_valid,
                    problems=list(ex.problems),
                )
            )
        timings["yaml"] = (time.perf_counter() - t_yaml) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        return AskResponse(
            question=question,
            rewritten_query=query,
            found=True,
            answer=render(chosen),
            confidence=conf.value,
            snippets=snippets,
            citations=citations,
            yaml_examples=examples,
            timings_ms=_round(timings),
        )

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


def _announced_list(query: str, hits: Sequence[Hit]) -> list[int]:
    """Citation ids of the top section's chunks when the section is a list its heading
    announces ("Kubernetes的主要作用包括：") and the question asks for that list."""
    if not hits or not asks_for_list(query):
        return []
    top = hits[0].chunk
    if not top.heading or not top.heading[-1].rstrip().endswith(("：", ":")):
        return []
    return [
        rank + 1
        for rank, hit in enumerate(hits)
        if hit.chunk.source == top.source and hit.chunk.heading == top.heading
    ]


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
