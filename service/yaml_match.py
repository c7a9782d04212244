"""Choose the YAML examples that go with an answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indexer.types import YamlExample
from service.query import QueryAnalysis
from service.search_backend import Lookup, examples_by_kind


@dataclass(frozen=True)
class MatchedExample:
    example_id: int
    example: YamlExample
    chunk_row: int  # the chunk the example sits in (for its citation)


def match_examples(
    query: QueryAnalysis,
    hit_rows: Sequence[int],
    examples: Lookup[YamlExample],
    example_chunk: Lookup[int],
    chunk_examples: Mapping[int, Sequence[int]],
    limit: int = 3,
    by_kind: Mapping[str, Sequence[int]] | None = None,
) -> list[MatchedExample]:
    """Examples of the kinds the question names (those in retrieved chunks before the
    rest). A request that names no kind gets the kinds its words hint at ("暴露应用的清单"
    hints at Service), else the examples inside the retrieved chunks. Nothing when the
    question neither names a kind nor asks for an example, and nothing of another kind when
    it names one: a DaemonSet question whose third chunk holds a Service manifest is not
    asking for that manifest. `by_kind` (see `examples_by_kind`) saves a pass over every
    example."""
    named = query.kinds
    if not named and not query.wants_example:
        return []
    if by_kind is None:
        assert isinstance(examples, Sequence), "by_kind is needed unless examples is a list"
        by_kind = examples_by_kind(examples)
    rank_of_row = {row: rank for rank, row in enumerate(hit_rows)}
    kinds = list(named or query.example_kinds)
    if named and query.wants_example:
        # A kind the request only hints at ("配额" for ResourceQuota) whose example the
        # retrieved sections hold is what it describes.
        kinds += [
            k for k in query.example_kinds_hinted
            if k not in kinds and any(
                example_chunk[i] in rank_of_row for i in by_kind.get(k.lower(), ())
            )
        ]
    # Of several kinds, the one whose example the best retrieved sections hold comes first:
    # "给 zookeeper 设一个……Pod 不可用的 PodDisruptionBudget，给个示例" wants the budget.
    kinds.sort(key=lambda k: _best_rank(k, rank_of_row, by_kind, example_chunk))
    chosen = _of_kinds(kinds, rank_of_row, examples, example_chunk, limit, by_kind)
    if not named and not chosen:
        for row in hit_rows:
            for i in chunk_examples.get(row, ()):
                if len(chosen) < limit and i not in chosen:
                    chosen.append(i)
    return [MatchedExample(i, examples[i], example_chunk[i]) for i in chosen[:limit]]


def _best_rank(
    kind: str, rank_of_row: dict[int, int], by_kind: Mapping[str, Sequence[int]],
    example_chunk: Lookup[int],
) -> int:
    ranks = [
        rank_of_row[example_chunk[i]]
        for i in by_kind.get(kind.lower(), ())
        if example_chunk[i] in rank_of_row
    ]
    return min(ranks, default=len(rank_of_row))


def _of_kinds(
    kinds: Sequence[str],
    rank_of_row: dict[int, int],
    examples: Lookup[YamlExample],
    example_chunk: Lookup[int],
    limit: int,
    by_kind: Mapping[str, Sequence[int]],
) -> list[int]:
    chosen: list[int] = []
    wanted = [k.lower() for k in kinds]
    for kind in wanted:
        same_kind = list(by_kind.get(kind, ()))
        same_kind.sort(
            key=lambda i: (
                rank_of_row.get(example_chunk[i], len(rank_of_row)),
                examples[i].k8s_valid is False,  # prefer examples that still apply
                not examples[i].valid,
                i,
            )
        )
        # One example per named kind first, so "Ingress 和 Service" shows both.
        for i in same_kind[:1]:
            if i not in chosen:
                chosen.append(i)
    for kind in wanted:
        for i in by_kind.get(kind, ()):
            if len(chosen) >= limit:
                break
            if i not in chosen and example_chunk[i] in rank_of_row:
                chosen.append(i)
    return chosen
