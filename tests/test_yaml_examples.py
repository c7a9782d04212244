"""YAML examples: fences, documents with line ranges, and schema checks of manifests."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from indexer.manifest_schema import ManifestValidator
from indexer.yaml_examples import (
    extract_examples,
    is_yaml_fence,
    looks_like_manifest,
)

HANDBOOK = Path("/work/shared/corpora/kubernetes-handbook")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: nginx
          image: nginx:1.27
          imagePullPolicy: IfNotPresent
          ports:
            - containerPort: 80
"""


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    return ManifestValidator()


def content_range(source: str, code: str) -> tuple[int, int]:
    """1-based line range of ``code`` inside ``source`` (as a Markdown parser would give)."""
    start = source[: source.index(code)].count("\n") + 1
    return start, start + code.rstrip("\n").count("\n")


# --------------------------------------------------------------------------- fences


@pytest.mark.parametrize(
    "info", ["yaml", "yml", "YAML", "Yaml", 'yaml title="deploy.yaml"', "{.yaml}"]
)
def test_yaml_fences_are_recognised(info: str) -> None:
    assert is_yaml_fence(info)


@pytest.mark.parametrize("info", ["", "bash", "text", "json", "yamllint", "shell yaml"])
def test_other_fences_are_not_yaml(info: str) -> None:
    assert not is_yaml_fence(info)


def test_unlabeled_block_with_a_manifest_looks_like_one() -> None:
    assert looks_like_manifest(DEPLOYMENT)
    assert looks_like_manifest("# 示例\n---\nkind: Service\napiVersion: v1\n")


@pytest.mark.parametrize(
    "code",
    [
        "$ kubectl get pods\nNAME   READY   STATUS",
        "name: x\nvalue: 1",  # YAML, but not a manifest
        "apiVersion: v1\nkind: [unclosed",  # broken
        "apiVersion: {{ .Values.api }}\nkind: Pod\n",  # template
        "kind: Pod\napiVersion: v1\n\tbad: tab",
        "",
        "\x00\x01 apiVersion: kind:",
    ],
)
def test_looks_like_manifest_is_false_and_never_raises(code: str) -> None:
    assert not looks_like_manifest(code)


# --------------------------------------------------------------------------- extraction


def test_single_manifest_is_described() -> None:
    [ex] = extract_examples(DEPLOYMENT, "apps/web.md", (10, 31))
    assert ex.valid
    assert (ex.kind, ex.api_version, ex.name) == ("Deployment", "apps/v1", "web")
    assert ex.lines == (10, 31)
    assert ex.yaml == DEPLOYMENT.rstrip("\n")
    # No validator given: not checked.
    assert ex.k8s_valid is None and ex.problems == ()


def test_multi_document_block_gives_one_example_per_document_with_its_lines() -> None:
    source = """\
# 部署

下面的文件同时创建 Service 和 Deployment：

```yaml
# service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80
---

---
# 只有注释的文档会被丢弃
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec: {}
```
"""
    code = source.split("```yaml\n", 1)[1].split("```", 1)[0]
    lines = content_range(source, code)
    assert lines == (6, 23)

    examples = extract_examples(code, "deploy.md", lines)

    assert [(e.kind, e.name) for e in examples] == [("Service", "web"), ("Deployment", "web")]
    source_lines = source.split("\n")
    for ex in examples:
        first, last = ex.lines
        # The example's text is exactly the cited source lines.
        assert ex.yaml == "\n".join(source_lines[first - 1 : last])
    assert examples[0].lines == (6, 13)  # the leading comment belongs to the Service
    assert examples[1].lines == (19, 23)


def test_invalid_yaml_is_kept_whole_with_regex_guesses() -> None:
    code = "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: 1}\n  name: broken\nspec: [\n"
    [ex] = extract_examples(code, "broken.md", (3, 8))
    assert not ex.valid
    assert ex.yaml == code.rstrip("\n")
    assert ex.lines == (3, 8)
    assert (ex.kind, ex.api_version, ex.name) == ("Pod", "v1", "broken")


def test_comment_only_and_empty_documents_are_dropped() -> None:
    assert extract_examples("# 这里什么都没有\n# 只有注释\n", "a.md", (1, 2)) == []
    assert extract_examples("---\n\n---\n", "a.md", (1, 3)) == []
    assert extract_examples("", "a.md", (1, 1)) == []


def test_helm_template_does_not_crash(validator: ManifestValidator) -> None:
    code = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ template "fullname" . }}
  labels:
{{ include "labels" . | indent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
"""
    [ex] = extract_examples(code, "helm.md", (1, 8), validator)
    assert not ex.valid
    assert ex.kind == "Deployment"
    assert ex.k8s_valid is None


def test_non_mapping_documents_have_no_kind() -> None:
    [ex] = extract_examples("- a\n- b\n", "list.md", (1, 2))
    assert ex.valid and ex.kind is None and ex.name is None


def test_dates_stay_strings_like_kubectl_reads_them(validator: ManifestValidator) -> None:
    code = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  since: 2019-01-01\n"
    [ex] = extract_examples(code, "cm.md", (1, 6), validator)
    assert ex.k8s_valid is True, ex.problems


# --------------------------------------------------------------------------- validation


def test_correct_deployment_passes(validator: ManifestValidator) -> None:
    [ex] = extract_examples(DEPLOYMENT, "web.md", (1, 22), validator)
    assert ex.k8s_valid is True
    assert ex.problems == ()


def test_removed_extensions_ingress_is_flagged(validator: ManifestValidator) -> None:
    code = """\
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: web
spec:
  rules:
    - host: example.com
      http:
        paths:
          - backend:
              serviceName: web
              servicePort: 80
"""
    [ex] = extract_examples(code, "ingress.md", (1, 12), validator)
    assert ex.k8s_valid is False
    [problem] = ex.problems
    assert problem.startswith("extensions/v1beta1 Ingress 在 Kubernetes")
    assert "已于 1.22 移除" in problem and "networking.k8s.io/v1" in problem


def test_removed_apps_v1beta1_deployment_is_flagged(validator: ManifestValidator) -> None:
    ok, problems = validator.check({"apiVersion": "apps/v1beta1", "kind": "Deployment"})
    assert ok is False
    assert "请改用 apps/v1" in problems[0]


def test_misspelt_field_is_reported_with_its_path(validator: ManifestValidator) -> None:
    code = DEPLOYMENT.replace("imagePullPolicy", "imagePullPolcy")
    [ex] = extract_examples(code, "web.md", (1, 22), validator)
    assert ex.k8s_valid is False
    assert ex.problems == ("spec.template.spec.containers[0].imagePullPolcy: 未知字段",)


def test_wrong_types_are_reported(validator: ManifestValidator) -> None:
    code = DEPLOYMENT.replace("replicas: 2", 'replicas: "2"')
    [ex] = extract_examples(code, "web.md", (1, 22), validator)
    assert ex.problems == ('spec.replicas: 类型错误，应为 integer，实际为 string（"2"）',)


def test_custom_resources_are_not_judged(validator: ManifestValidator) -> None:
    code = """\
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: example-com
spec:
  secretName: example-com-tls
  dnsNames: [example.com]
"""
    [ex] = extract_examples(code, "tls.md", (1, 7), validator)
    assert ex.valid and ex.kind == "Certificate"
    assert ex.k8s_valid is None and ex.problems == ()


def test_non_manifests_are_not_judged(validator: ManifestValidator) -> None:
    assert validator.check({"name": "x"}) == (None, [])
    assert validator.check(["a"]) == (None, [])
    # A kubeconfig is apiVersion v1 but not an API object.
    assert validator.check({"apiVersion": "v1", "kind": "Config", "clusters": []}) == (None, [])


def test_list_items_are_checked_individually(validator: ManifestValidator) -> None:
    ok, problems = validator.check(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "dta": {}}
            ],
        }
    )
    assert ok is False
    assert problems == ["items[0].dta: 未知字段"]


def test_target_version_is_selectable() -> None:
    old = ManifestValidator("v1.25.4")
    assert old.version == "1.25"
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "web"}},
    }
    assert old.check(hpa) == (True, [])  # still served in 1.25, removed in 1.26
    ok, problems = ManifestValidator("1.26").check(hpa)
    assert ok is False and "已于 1.26 移除" in problems[0]
    with pytest.raises(ValueError):
        ManifestValidator("1.4")


# --------------------------------------------------------------------------- the handbook

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")


def _fenced_blocks(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    """(info, code, content line range) of each fenced block (markdown-it if available)."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it-py is a project dependency
        return _fenced_blocks_regex(text)
    blocks = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type == "fence" and token.map and token.content:
            first = token.map[0] + 2  # map is 0-based and starts at the opening fence
            blocks.append(
                (token.info, token.content, (first, first + token.content.count("\n") - 1))
            )
    return blocks


def _fenced_blocks_regex(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if j > i + 1:
            blocks.append((m.group("info"), "\n".join(lines[i + 1 : j]) + "\n", (i + 2, j)))
        i = j + 1
    return blocks


def _problem_kind(problem: str) -> str:
    """Group problems: removed APIs by apiVersion+kind, field problems by message type."""
    if " 在 Kubernetes " in problem:
        return problem.split(" 在 Kubernetes ")[0] + " 已移除/不存在"
    field, _, message = problem.partition(": ")
    leaf = re.sub(r"\[\d+\]", "[]", field).rsplit(".", 1)[-1]
    return f"{message.split('，')[0]}: {leaf}"


@pytest.mark.skipif(not HANDBOOK.is_dir(), reason="kubernetes-handbook corpus not present")
def test_every_handbook_yaml_block(validator: ManifestValidator) -> None:
    examples = []
    blocks = 0
    seconds = 0.0
    for path in sorted(HANDBOOK.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        source = path.relative_to(HANDBOOK).as_posix()
        source_lines = text.split("\n")
        for info, code, lines in _fenced_blocks(text):
            if not (is_yaml_fence(info) or looks_like_manifest(code)):
                continue
            blocks += 1
            started = time.perf_counter()
            found = extract_examples(code, source, lines, validator)
            seconds += time.perf_counter() - started
            for ex in found:
                # Line ranges point inside the fence (fences in lists are indented).
                assert lines[0] <= ex.lines[0] <= ex.lines[1] <= lines[1]
                if ex.valid:
                    first_line = ex.yaml.split("\n", 1)[0].strip()
                    assert first_line in source_lines[ex.lines[0] - 1]
            examples.extend(found)

    verdicts = Counter(ex.k8s_valid for ex in examples)
    flagged = [ex for ex in examples if ex.k8s_valid is False]
    kinds = Counter(_problem_kind(p) for ex in flagged for p in ex.problems)
    print(
        f"\nhandbook: {blocks} blocks -> {len(examples)} examples, "
        f"{sum(ex.valid for ex in examples)} parsed, "
        f"k8s_valid True={verdicts[True]} False={verdicts[False]} None={verdicts[None]}, "
        f"{seconds:.2f}s extract+validate (Kubernetes {validator.version})"
    )
    print("top problem kinds:")
    for kind, count in kinds.most_common(5):
        print(f"  {count:4d}  {kind}")

    assert len(examples) > 300
    assert flagged
