"""Choose the YAML examples that go with an answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.types import YamlExample

_WANTS_EXAMPLE = re.compile(
    r"(yaml|yml|manifest|示例|例子|样例|范例|实例|配置文件|清单|模板|模版|怎么写|写法"
    r"|example|sample|template)",
    re.IGNORECASE,
)


def wants_example(question: str) -> bool:
    return bool(_WANTS_EXAMPLE.search(question))


@dataclass(frozen=True)
class MatchedExample:
    example_id: int
    example: YamlExample
    chunk_row: int  # the chunk the example sits in (for its citation)


def match_examples(
    question: str,
    kinds: Sequence[str],
    hit_rows: Sequence[int],
    examples: Sequence[YamlExample],
    example_chunk: Sequence[int],
    chunk_examples: dict[int, Sequence[int]],
    limit: int = 3,
) -> list[MatchedExample]:
    """Examples of the named kinds (those in retrieved chunks before the rest); when the
    question asks for an example without naming a kind, the examples inside the retrieved
    chunks. Nothing when the question neither names a kind nor asks for an example, and
    nothing of another kind when it names one: a DaemonSet question whose third chunk holds
    a Service manifest is not asking for that manifest."""
    if not kinds and not wants_example(question):
        return []
    rank_of_row = {row: rank for rank, row in enumerate(hit_rows)}
    chosen: list[int] = []
    wanted = [k.lower() for k in kinds]
    for kind in wanted:
        same_kind = [
            i for i, ex in enumerate(examples) if (ex.kind or "").lower() == kind
        ]
        same_kind.sort(
            key=lambda i: (
                rank_of_row.get(example_chunk[i], len(hit_rows)),
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
        for i in (i for i, ex in enumerate(examples) if (ex.kind or "").lower() == kind):
            if len(chosen) >= limit:
                break
            if i not in chosen and example_chunk[i] in rank_of_row:
                chosen.append(i)
    if not wanted:
        for row in hit_rows:
            for i in chunk_examples.get(row, ()):
                if len(chosen) >= limit:
                    break
                if i not in chosen:
                    chosen.append(i)
    return [MatchedExample(i, examples[i], example_chunk[i]) for i in chosen[:limit]]
