"""Kubernetes manifests checked against the OpenAPI schemas of one Kubernetes version.

The schemas ship with the ``kubernetes-validate`` package (no network).  Problems are short
Chinese messages with the field path; APIs that Kubernetes removed are named as removed, with
what to use instead.  YAML extraction itself lives in `indexer.yaml_examples`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv_utils
from importlib_resources import files
from importlib_resources.abc import Traversable
from packaging.version import Version
from referencing import Registry, Resource

__all__ = ["ManifestValidator"]

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
