"""YAML examples in fenced code blocks: split into documents, describe, and check them.

Every YAML document of a block becomes one `YamlExample` with its own source line range, so
an answer can cite exactly the manifest it shows.  `ManifestValidator` checks manifests
against the Kubernetes OpenAPI schemas shipped with the ``kubernetes-validate`` package
(no network) and reports problems in short Chinese messages with the field path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv_utils
import yaml
from importlib_resources import files
from importlib_resources.abc import Traversable
from packaging.version import Version
from referencing import Registry, Resource

from indexer.markdown import MAX_YAML_CHARS, YamlLimitError, check_yaml_limits
from indexer.types import YamlExample

__all__ = [
    "ManifestValidator",
    "extract_examples",
    "is_yaml_fence",
    "looks_like_manifest",
]

# --------------------------------------------------------------------------- YAML parsing


class _Loader(yaml.SafeLoader):
    """SafeLoader as kubectl sees YAML: timestamps stay strings, a bare ``=`` is a string.

    kubectl converts YAML to JSON, so ``date: 2020-01-01`` is a string there; PyYAML's date
    objects would otherwise be reported as type errors that do not exist.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_value(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # PyYAML resolves a plain "=" to the (unsupported) !!value tag; see pyyaml#89.
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:value", _construct_value)


def _load_all(text: str) -> list[Any]:
    """All documents of ``text``; raises on any parse problem (callers catch broadly), and
    YamlLimitError for YAML too large, too deep or expanding to too many nodes (alias bombs),
    before anything is constructed. Tags such as ``!!python/object`` are refused by the safe
    loader: nothing in a note is ever executed."""
    check_yaml_limits(text, _Loader)
    return list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - _Loader is a SafeLoader


def _reason(exc: BaseException) -> str:
    """Why a block is not usable YAML, in one short Chinese line."""
    if isinstance(exc, YamlLimitError):
        return str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError):
        tag = getattr(exc, "problem", "") or ""
        return f"YAML 含有不允许的标签，未解析：{tag.strip()}"[:200]
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"YAML 语法错误（第 {mark.line + 1} 行第 {mark.column + 1} 列）：{exc.problem}"[:200]
    if isinstance(exc, RecursionError):
        return "YAML 嵌套太深"
    return f"YAML 无法解析：{type(exc).__name__}"


# --------------------------------------------------------------------------- fences

_YAML_LANGS = frozenset({"yaml", "yml"})


def is_yaml_fence(info: str) -> bool:
    """True for fence info naming YAML: ``yaml``, ``YML``, ``yaml title="x"``, ``{.yaml}``."""
    words = info.strip().split()
    if not words:
        return False
    # The language is the first word; attribute syntaxes glue extra characters onto it.
    lang = re.split(r"[{},:;\[]", words[0].strip("{}.").lstrip("."), maxsplit=1)[0]
    return lang.lower() in _YAML_LANGS


_MANIFEST_HINT = re.compile(r"^\s*apiVersion\s*:", re.MULTILINE)
_KIND_HINT = re.compile(r"^\s*kind\s*:", re.MULTILINE)


def looks_like_manifest(code: str) -> bool:
    """For unlabeled/other fences: does this parse to a mapping with ``apiVersion`` and ``kind``?"""
    # Cheap textual gate first: most unlabeled blocks are shell output, not worth parsing.
    if not (_MANIFEST_HINT.search(code) and _KIND_HINT.search(code)):
        return False
    try:
        docs = _load_all(code)
    except YamlLimitError:
        return True  # looks like one, but too big to parse: kept, marked invalid with why
    except Exception:  # any parser/constructor error means "not a manifest"
        return False
    return any(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs)


# --------------------------------------------------------------------------- extraction

# A line starting with "---" or "..." at column 0 always ends a YAML document, even inside a
# block scalar (YAML 1.2 c-forbidden), so splitting on such lines is exact.
_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?=\s|$)")


@dataclass(frozen=True)
class _Segment:
    first: int  # 0-based line index within the block
    last: int  # inclusive
    text: str


def _split_documents(block_lines: Sequence[str]) -> list[_Segment]:
    segments: list[_Segment] = []
    current: list[int] = []

    def flush() -> None:
        # Trim blank lines so the range covers the document's own text only.
        idx = [i for i in current if block_lines[i].strip()]
        if idx:
            first, last = idx[0], idx[-1]
            segments.append(_Segment(first, last, "\n".join(block_lines[first : last + 1])))
        current.clear()

    for i, line in enumerate(block_lines):
        if _DOC_MARKER.match(line):
            flush()
            rest = line[3:].strip()
            # "--- |" or "--- {a: 1}" start a document on the marker line itself.
            if line.startswith("---") and rest and not rest.startswith("#"):
                current.append(i)
            continue
        current.append(i)
    flush()
    return segments


_KIND_RX = re.compile(r"^kind:\s*(\S+)", re.MULTILINE)
_API_RX = re.compile(r"^apiVersion:\s*(\S+)", re.MULTILINE)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _regex_name(text: str) -> str | None:
    """``metadata.name`` of unparsable YAML: the first ``name:`` directly under ``metadata:``."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not re.match(r"^metadata:\s*(#.*)?$", line):
            continue
        child_indent: int | None = None
        for sub in lines[i + 1 :]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            indent = len(sub) - len(sub.lstrip(" "))
            if indent == 0:
                break
            if child_indent is None:
                child_indent = indent
            if indent == child_indent:
                m = re.match(r"^\s*name:\s*(.+?)\s*(?:\s#.*)?$", sub)
                if m:
                    return _unquote(m.group(1)) or None
        return None
    return None


def _regex_field(rx: re.Pattern[str], text: str) -> str | None:
    m = rx.search(text)
    return _unquote(m.group(1)) or None if m else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _describe(doc: object) -> tuple[str | None, str | None, str | None]:
    """(kind, apiVersion, metadata.name) of a parsed document; strings only."""
    if not isinstance(doc, dict):
        return None, None, None
    meta = doc.get("metadata")
    name = _str_or_none(meta.get("name")) if isinstance(meta, dict) else None
    return _str_or_none(doc.get("kind")), _str_or_none(doc.get("apiVersion")), name


def extract_examples(
    code: str,
    source: str,
    lines: tuple[int, int],
    validator: ManifestValidator | None = None,
) -> list[YamlExample]:
    """One `YamlExample` per non-empty YAML document of a fenced block.

    ``lines`` is the 1-based inclusive range of the fence's content lines; each example gets
    the range of its own document.  A block that does not parse is kept whole as a single
    example with ``valid=False`` and kind/apiVersion/name guessed with regexes.
    """
    text = code[:-1] if code.endswith("\n") else code
    block_lines = text.split("\n")
    segments = _split_documents(block_lines)

    parsed: list[tuple[_Segment, object]] = []
    try:
        for seg in segments:
            for doc in _load_all(seg.text):
                if doc is not None:  # comment-only or empty documents say nothing
                    parsed.append((seg, doc))
    except Exception as exc:  # parse errors, Helm templates, limits: keep the block, unparsed
        if not text.strip():
            return []
        head = text[:MAX_YAML_CHARS]  # the regex guesses need no more than the start
        return [
            YamlExample(
                source=source,
                lines=lines,
                yaml=text,
                valid=False,
                kind=_regex_field(_KIND_RX, head),
                api_version=_regex_field(_API_RX, head),
                name=_regex_name(head),
                problems=(_reason(exc),),
            )
        ]

    examples: list[YamlExample] = []
    for seg, doc in parsed:
        kind, api_version, name = _describe(doc)
        k8s_valid: bool | None = None
        problems: list[str] = []
        if validator is not None and isinstance(doc, dict):
            k8s_valid, problems = validator.check(doc)
        examples.append(
            YamlExample(
                source=source,
                lines=(lines[0] + seg.first, lines[0] + seg.last),
                yaml=seg.text,
                valid=True,
                kind=kind,
                api_version=api_version,
                name=name,
                k8s_valid=k8s_valid,
                problems=tuple(problems),
            )
        )
    return examples


# --------------------------------------------------------------------------- validation

# Built-in APIs removed before (or at) the oldest schema set the package ships, so the
# schemas alone cannot tell "removed" from "never existed".  Later removals are derived
# from the shipped schema sets.  Source: Kubernetes "Deprecated API Migration Guide".
# (apiVersion, kinds or None for the whole group-version) -> (removed in, replacement)
_REMOVED: list[tuple[str, frozenset[str] | None, str, str | None]] = [
    ("extensions/v1beta1", frozenset({"Deployment", "DaemonSet", "ReplicaSet"}), "1.16", "apps/v1"),
    ("extensions/v1beta1", frozenset({"NetworkPolicy"}), "1.16", "networking.k8s.io/v1"),
    ("extensions/v1beta1", frozenset({"PodSecurityPolicy"}), "1.16", None),
    ("extensions/v1beta1", frozenset({"Ingress"}), "1.22", "networking.k8s.io/v1"),
    ("extensions/v1beta1", None, "1.22", None),
    ("apps/v1beta1", None, "1.16", "apps/v1"),
    ("apps/v1beta2", None, "1.16", "apps/v1"),
    (
        "admissionregistration.k8s.io/v1alpha1",
        frozenset({"ExternalAdmissionHookConfiguration"}),
        "1.9",
        None,
    ),
    (
        "admissionregistration.k8s.io/v1alpha1",
        frozenset({"InitializerConfiguration"}),
        "1.14",
        None,
    ),
    ("settings.k8s.io/v1alpha1", None, "1.20", None),
    ("batch/v2alpha1", frozenset({"CronJob"}), "1.21", "batch/v1"),
    (
        "networking.k8s.io/v1beta1",
        frozenset({"Ingress", "IngressClass"}),
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}),
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        frozenset({"CustomResourceDefinition"}),
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "apiregistration.k8s.io/v1beta1",
        frozenset({"APIService"}),
        "1.22",
        "apiregistration.k8s.io/v1",
    ),
    (
        "authentication.k8s.io/v1beta1",
        frozenset({"TokenReview"}),
        "1.22",
        "authentication.k8s.io/v1",
    ),
    (
        "authorization.k8s.io/v1beta1",
        frozenset(
            {
                "SubjectAccessReview",
                "LocalSubjectAccessReview",
                "SelfSubjectAccessReview",
                "SelfSubjectRulesReview",
            }
        ),
        "1.22",
        "authorization.k8s.io/v1",
    ),
    (
        "certificates.k8s.io/v1beta1",
        frozenset({"CertificateSigningRequest"}),
        "1.22",
        "certificates.k8s.io/v1",
    ),
    ("coordination.k8s.io/v1beta1", frozenset({"Lease"}), "1.22", "coordination.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", None, "1.22", "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1alpha1", None, "1.22", "rbac.authorization.k8s.io/v1"),
    ("scheduling.k8s.io/v1beta1", frozenset({"PriorityClass"}), "1.22", "scheduling.k8s.io/v1"),
    ("scheduling.k8s.io/v1alpha1", frozenset({"PriorityClass"}), "1.22", "scheduling.k8s.io/v1"),
    (
        "storage.k8s.io/v1beta1",
        frozenset({"CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"}),
        "1.22",
        "storage.k8s.io/v1",
    ),
    ("batch/v1beta1", frozenset({"CronJob"}), "1.25", "batch/v1"),
    ("discovery.k8s.io/v1beta1", frozenset({"EndpointSlice"}), "1.25", "discovery.k8s.io/v1"),
    ("events.k8s.io/v1beta1", frozenset({"Event"}), "1.25", "events.k8s.io/v1"),
    ("autoscaling/v2beta1", None, "1.25", "autoscaling/v2"),
    ("policy/v1beta1", frozenset({"PodDisruptionBudget"}), "1.25", "policy/v1"),
    ("policy/v1beta1", frozenset({"PodSecurityPolicy"}), "1.25", None),
    ("node.k8s.io/v1beta1", frozenset({"RuntimeClass"}), "1.25", "node.k8s.io/v1"),
    ("node.k8s.io/v1alpha1", frozenset({"RuntimeClass"}), "1.22", "node.k8s.io/v1"),
]
_NO_REPLACEMENT_HINT = {
    "PodSecurityPolicy": "PodSecurityPolicy 已整体移除，请改用 Pod Security Admission",
    "PodPreset": "PodPreset 已整体移除，请改用 Mutating Admission Webhook",
    "ExternalAdmissionHookConfiguration": (
        "请改用 admissionregistration.k8s.io/v1 的 ValidatingWebhookConfiguration"
    ),
    "InitializerConfiguration": "Initializers 已整体移除，请改用 Mutating Admission Webhook",
    "ResourceClass": "DRA 的 ResourceClass 已由 DeviceClass（resource.k8s.io/v1）取代",
}


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _schema_dir(version: str) -> str:
    return f"v{version}.0-local-strict"


def _definitions_file(version: str) -> Traversable:
    return files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/{_schema_dir(version)}/_definitions.json"
    )


@lru_cache(maxsize=1)
def _available_versions() -> tuple[str, ...]:
    """Minor versions with strict schemas in the package, oldest first ("1.25", ...)."""
    minors = {kv_utils.major_minor(v) for v in kv_utils.all_versions()}
    root = files("kubernetes_validate").joinpath("kubernetes-json-schema")
    have = [m for m in minors if root.joinpath(_schema_dir(m)).is_dir()]
    return tuple(sorted(have, key=Version))


def _resolve_version(requested: str | None) -> str:
    versions = _available_versions()
    if requested is None:
        return kv_utils.major_minor(kv_utils.latest_version())
    want = Version(kv_utils.major_minor(requested.lstrip("vV")))
    # Like kubernetes-validate: the newest schema set not newer than the requested version,
    # compared as versions (the package compares strings, so "1.4" > "1.37" there).
    fitting = [v for v in versions if Version(v) <= want]
    if not fitting or want > Version(versions[-1]):
        raise ValueError(
            f"kubernetes-validate 没有 Kubernetes {requested} 的 schema"
            f"（可用：{versions[0]}–{versions[-1]}）"
        )
    return fitting[-1]


@dataclass(frozen=True)
class _SchemaSet:
    """Everything needed to validate against one Kubernetes minor version."""

    version: str
    defs: dict[str, Any]  # definition name -> JSON schema
    gvk: dict[tuple[str, str], str]  # (apiVersion, kind) -> definition name
    kinds: dict[str, tuple[str, ...]]  # kind -> apiVersions serving it
    registry: Registry[Any]


@cache
def _schema_set(version: str) -> _SchemaSet:
    # One ~2 MB file holds every definition; loading it once per version (instead of once
    # per manifest, as kubernetes_validate.validate does) is what makes validation fast.
    contents = json.loads(_definitions_file(version).read_text(encoding="utf-8"))
    defs: dict[str, Any] = contents["$defs"]
    gvk: dict[tuple[str, str], str] = {}
    kinds: dict[str, list[str]] = {}
    for def_name, schema in defs.items():
        for entry in schema.get("x-kubernetes-group-version-kind", ()):
            group, ver, kind = entry["group"], entry["version"], entry["kind"]
            if kind in ("DeleteOptions", "WatchEvent"):
                continue  # registered in every group-version; not something one writes
            api_version = _api_version(group, ver)
            gvk[(api_version, kind)] = def_name
            kinds.setdefault(kind, []).append(api_version)
    registry: Registry[Any] = Resource.from_contents(contents) @ Registry()
    return _SchemaSet(
        version=version,
        defs=defs,
        gvk=gvk,
        kinds={k: tuple(v) for k, v in kinds.items()},
        registry=registry,
    )


@cache
def _served(version: str) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """(apiVersion, kind) pairs and API groups of a version, without keeping its schemas."""
    contents = json.loads(_definitions_file(version).read_text(encoding="utf-8"))
    pairs: set[tuple[str, str]] = set()
    groups: set[str] = set()
    for schema in contents["$defs"].values():
        for entry in schema.get("x-kubernetes-group-version-kind", ()):
            # DeleteOptions is registered in every group-version, even long-removed ones,
            # which makes it a good witness of which groups are built in.
            groups.add(entry["group"])
            pairs.add((_api_version(entry["group"], entry["version"]), entry["kind"]))
    return frozenset(pairs), frozenset(groups)


@lru_cache(maxsize=1)
def _builtin_groups() -> frozenset[str]:
    """API groups Kubernetes itself serves (in any shipped version or the removal table)."""
    groups = {_group(av) for av, _, _, _ in _REMOVED}
    for version in _available_versions():
        groups.update(_served(version)[1])
    return frozenset(groups)


def _stability(api_version: str) -> tuple[int, int, str]:
    # Suggest GA over beta over alpha, and the newest major (autoscaling/v2 over v1).
    ver = api_version.rsplit("/", 1)[-1]
    rank = 2 if "alpha" in ver else 1 if "beta" in ver else 0
    major = re.match(r"v(\d+)", ver)
    return rank, -int(major.group(1)) if major else 0, api_version


_PY_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "dict": "object",
    "list": "array",
    "NoneType": "null",
}
_MAX_PROBLEMS = 20


_IDENT = re.compile(r"[A-Za-z_$][\w$-]*")


def _format_path(path: Iterable[object]) -> str:
    """``spec.containers[0].name``; keys with dots/slashes (annotations) as ``["a/b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return out


def _type_names(types: object) -> list[str]:
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list):
        return []
    return [t for t in types if t != "null"]  # null is always allowed; don't suggest it


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _messages(error: jsonschema.ValidationError, prefix: tuple[object, ...]) -> Iterator[str]:
    """Chinese, path-first messages for one jsonschema error."""
    parts = [*prefix, *error.absolute_path]
    where = _format_path(parts) or "(根)"
    validator = error.validator
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for key in error.instance:
            if key not in known:
                yield f"{_format_path([*parts, key])}: 未知字段"
    elif validator == "required" and isinstance(error.instance, dict):
        for key in error.validator_value:
            if key not in error.instance:
                yield f"{_format_path([*parts, key])}: 缺少必填字段"
    elif validator == "type":
        expected = "/".join(_type_names(error.validator_value)) or str(error.validator_value)
        actual = _PY_TYPES.get(type(error.instance).__name__, type(error.instance).__name__)
        yield f"{where}: 类型错误，应为 {expected}，实际为 {actual}（{_short(error.instance)}）"
    elif validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value if v is not None)
        yield f"{where}: 取值无效 {_short(error.instance)}，可选值：{options}"
    elif validator in ("oneOf", "anyOf") and all(
        isinstance(s, dict) and set(s) <= {"type"} for s in error.validator_value
    ):
        # IntOrString / Quantity: a type union, say which types are allowed.
        names = [n for s in error.validator_value for n in _type_names(s.get("type"))]
        actual = _PY_TYPES.get(type(error.instance).__name__, type(error.instance).__name__)
        yield f"{where}: 类型错误，应为 {' 或 '.join(names)}，实际为 {actual}"
    elif error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            yield from _messages(best, prefix)
    else:
        yield f"{where}: 不符合 schema（{error.message}）"


class ManifestValidator:
    """Checks Kubernetes manifests against one version's OpenAPI schemas (strict mode).

    ``kubernetes_version`` like ``"1.29"`` / ``"v1.29.3"``; None means the newest version
    the installed kubernetes-validate ships.  Validators are built once per
    (apiVersion, kind) and reused, so hundreds of manifests take well under a second.
    """

    def __init__(self, kubernetes_version: str | None = None) -> None:
        self.version = _resolve_version(kubernetes_version)
        self._schemas = _schema_set(self.version)
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}

    def check(self, doc: object) -> tuple[bool | None, list[str]]:
        """(True, []) valid; (False, problems) invalid; (None, []) not a checkable manifest."""
        try:
            return self._check(doc, ())
        except RecursionError:  # self-referencing YAML anchors
            return None, []

    def _check(self, doc: object, prefix: tuple[object, ...]) -> tuple[bool | None, list[str]]:
        if not isinstance(doc, dict):
            return None, []
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None, []
        if kind == "List" and api_version == "v1" and isinstance(doc.get("items"), list):
            return self._check_list(doc["items"], prefix)

        key = (api_version, kind)
        if key in self._schemas.gvk:
            errors = self._validator(key).iter_errors(doc)
            problems = _dedupe(msg for err in errors for msg in _messages(err, prefix))
            return (not problems), problems[:_MAX_PROBLEMS]

        problem = self._missing_api(api_version, kind)
        if problem is None:
            return None, []  # a CRD or other API we have no schema for: can't judge
        return False, [f"{_format_path(prefix)}: {problem}" if prefix else problem]

    def _check_list(
        self, items: list[object], prefix: tuple[object, ...]
    ) -> tuple[bool | None, list[str]]:
        results = [self._check(item, (*prefix, "items", i)) for i, item in enumerate(items)]
        problems = [p for _, ps in results for p in ps]
        verdicts = {ok for ok, _ in results}
        if False in verdicts:
            return False, problems[:_MAX_PROBLEMS]
        return (True if True in verdicts else None), []

    def _validator(self, key: tuple[str, str]) -> jsonschema.protocols.Validator:
        validator = self._validators.get(key)
        if validator is None:
            def_name = self._schemas.gvk[key]
            schema = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{def_name}"}
            validator = jsonschema.Draft202012Validator(schema, registry=self._schemas.registry)
            self._validators[key] = validator
        return validator

    def _missing_api(self, api_version: str, kind: str) -> str | None:
        """Why a built-in (apiVersion, kind) has no schema here, or None if it is not ours."""
        group = _group(api_version)
        if group not in _builtin_groups():
            return None  # cert-manager, Istio, Gateway API, kubeadm config ...
        target = Version(self.version)
        head = f"{api_version} {kind} 在 Kubernetes {self.version} 中不存在"
        for av, kinds, removed_in, replacement in _REMOVED:
            if av == api_version and (kinds is None or kind in kinds):
                if target >= Version(removed_in):
                    return f"{head}（已于 {removed_in} 移除）{self._hint(kind, replacement)}"
                break  # removed later than the target: the schema set just lacks it
        shipped_removal = self._removed_in_shipped(api_version, kind)
        if shipped_removal is not None:
            return f"{head}（已于 {shipped_removal} 移除）{self._hint(kind, None)}"
        if kind in self._schemas.kinds:
            return f"{head}（apiVersion 无效或已移除）{self._hint(kind, None)}"
        for known in self._schemas.kinds:
            if known.lower() == kind.lower():
                return f"kind {kind} 大小写错误，应为 {known}"
        return None  # e.g. v1 Config (kubeconfig), audit.k8s.io Policy: not API objects

    def _removed_in_shipped(self, api_version: str, kind: str) -> str | None:
        # Served by an older shipped schema set but not by the target: removed in the first
        # later version that lacks it.
        last_seen: str | None = None
        for version in _available_versions():
            if Version(version) >= Version(self.version):
                break
            if (api_version, kind) in _served(version)[0]:
                last_seen = version
        if last_seen is None:
            return None
        later = [v for v in _available_versions() if Version(v) > Version(last_seen)]
        return later[0] if later else None

    def _hint(self, kind: str, replacement: str | None) -> str:
        served = sorted(self._schemas.kinds.get(kind, ()), key=_stability)
        use = replacement or (served[0] if served else None)
        if use is not None:
            return f"，请改用 {use}"
        extra = _NO_REPLACEMENT_HINT.get(kind)
        return f"；{extra}" if extra else ""


def _dedupe(messages: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(messages))  # keep schema order, drop repeats
