"""YAML from notes is untrusted: alias bombs, huge or deeply nested documents, self-
references and Python tags are parsed safely within limits, never executed, and marked
invalid with a reason (issue 12). Front matter gets the same limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.manifest_schema import ManifestValidator
from indexer.markdown import MAX_YAML_CHARS, MAX_YAML_DEPTH, MAX_YAML_NODES, parse_note
from indexer.yaml_examples import extract_examples, looks_like_manifest

LEVELS = "abcdefghi"


def alias_bomb(header: str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n") -> str:
    """Nine levels of nine aliases: 9^9 (387 million) strings once expanded."""
    lines = [header + "data:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip(LEVELS, LEVELS[1:], strict=False):
        lines.append(f"  {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    return ManifestValidator()


def only(code: str, validator: ManifestValidator | None = None):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    [example] = extract_examples(code, "hostile.md", (1, code.count("\n") + 1), validator)
    # Limits are checked before anything is built or walked: each case is instant.
    assert time.perf_counter() - started < 2
    return example


def test_an_alias_bomb_is_refused_before_it_expands(validator: ManifestValidator) -> None:
    ex = only(alias_bomb(), validator)
    assert ex.valid is False and ex.k8s_valid is None
    assert ex.kind == "ConfigMap" and ex.name == "lol"  # still described, by regex
    assert ex.problems == (f"YAML 展开后节点太多：超过 {MAX_YAML_NODES} 个（可能是别名炸弹）",)


def test_a_few_aliases_are_fine(validator: ManifestValidator) -> None:
    code = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n  labels: &l {app: web}\n"
            "  annotations: *l\ndata:\n  a: x\n")
    ex = only(code, validator)
    assert ex.valid and ex.k8s_valid is True and ex.problems == ()


@pytest.mark.parametrize(
    "code",
    [
        "apiVersion: v1\nkind: Pod\nmetadata: !!python/object/apply:os.system ['touch {marker}']\n",
        "apiVersion: v1\nkind: Pod\nmetadata:\n"
        "  name: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "apiVersion: v1\nkind: Pod\nspec: !!python/name:os.system\n",
        "apiVersion: v1\nkind: Pod\nspec: !!python/module:os\n",
    ],
    ids=["object-apply", "object-new", "name", "module"],
)
def test_python_tags_are_never_executed(code: str, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    ex = only(code.replace("{marker}", str(marker)))
    assert ex.valid is False
    assert ex.problems[0].startswith("YAML 含有不允许的标签，未解析")
    assert not marker.exists()
    # An unlabeled fence holding it is not taken for a manifest either.
    assert looks_like_manifest(code.replace("{marker}", str(marker))) is False
    assert not marker.exists()


def test_a_huge_document_is_not_parsed(validator: ManifestValidator) -> None:
    code = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n" + "".join(
        f"  key{i}: value{i}\n" for i in range(MAX_YAML_CHARS // 10)
    )
    ex = only(code, validator)
    assert ex.valid is False and ex.kind == "ConfigMap" and ex.name == "big"
    assert ex.problems == (f"YAML 太大：{len(code.rstrip())} 个字符，最多 {MAX_YAML_CHARS} 个",)
    # Unlabeled, it still looks like a manifest, so it is kept and marked, not dropped.
    assert looks_like_manifest(code) is True


def test_many_small_nodes_are_over_the_node_limit() -> None:
    code = "items:\n" + "".join(f"- {i}\n" for i in range(MAX_YAML_NODES + 10))
    ex = only(code)
    assert ex.valid is False and "节点太多" in ex.problems[0]


@pytest.mark.parametrize(
    "code",
    [
        "a: " + "[" * 30_000 + "]" * 30_000 + "\n",
        "a: " + "{b: " * 5_000 + "1" + "}" * 5_000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(MAX_YAML_DEPTH + 5)) + "  " * 70 + "x: 1\n",
    ],
    ids=["flow-lists", "flow-maps", "block-indentation"],
)
def test_deep_nesting_is_refused_quickly(code: str) -> None:
    ex = only(code)
    assert ex.valid is False
    assert "嵌套太深" in ex.problems[0] or "语法错误" in ex.problems[0]


def test_a_self_reference_is_refused() -> None:
    ex = only("a: &a [1, *a]\n")
    assert ex.valid is False and ex.problems == ("YAML 的锚点引用了自身（循环引用）",)


def test_a_syntax_error_says_where() -> None:
    ex = only("apiVersion: v1\nkind: Pod\nspec: [\n")
    assert ex.valid is False and ex.problems[0].startswith("YAML 语法错误（第 ")


@pytest.mark.parametrize(
    "front",
    [
        alias_bomb("") + "title: *i\n",
        "title: !!python/object/apply:os.system ['echo pwned']\n",
        "title: " + "[" * 5_000 + "]" * 5_000 + "\n",
        "title: x\n" + "k: v\n" * 60_000,
    ],
    ids=["alias-bomb", "python-tag", "deep", "huge"],
)
def test_hostile_front_matter_is_ignored_and_the_note_still_parses(front: str) -> None:
    started = time.perf_counter()
    note = parse_note(f"---\n{front}---\n\n# 标题\n\n正文一行。\n")
    assert time.perf_counter() - started < 2
    assert note.title is None and note.front_matter == {}
    assert any(getattr(b, "text", "") == "标题" for b in note.blocks)
