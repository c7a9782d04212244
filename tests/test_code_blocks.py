"""Code blocks: which are YAML examples, which are commands, and which are neither."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.build import build_index
from indexer.chunk_table import ChunkTable
from indexer.code_blocks import MAX_COMMAND_LINES, CodeExamples, extract_code
from indexer.embedding import HashingEmbedder
from indexer.markdown import Code, parse_note
from indexer.settings import Settings
from indexer.store import IndexCorruptError, IndexNotFoundError, current_build, load_index
from indexer.tokenization import Tokenizer
from indexer.types import Chunk, CommandExample


def code_of(note: str) -> CodeExamples:
    """What the fenced blocks of a note (as the indexer parses it) offer."""
    codes = [block for block in parse_note(note).blocks if isinstance(block, Code)]
    return extract_code(codes, "note.md", validator=None)


def only_command(note: str) -> CommandExample:
    found = code_of(note)
    assert found.yaml == [] and len(found.commands) == 1, found
    return found.commands[0]


def neither(note: str) -> bool:
    found = code_of(note)
    return found.yaml == [] and found.commands == []


# --------------------------------------------------------------------------- commands


def test_kubectl_in_a_bash_fence_is_a_command() -> None:
    command = only_command(
        "# 查看 Pod\n"
        "\n"
        "```bash\n"
        "kubectl get pods -n kube-system\n"
        "kubectl describe pod coredns\n"
        "```\n"
    )
    assert command == CommandExample(
        source="note.md",
        lines=(4, 5),
        language="bash",
        text="kubectl get pods -n kube-system\nkubectl describe pod coredns",
    )


def test_a_console_session_keeps_its_prompt_and_output() -> None:
    command = only_command(
        "```console\n"
        "$ kubectl get pods\n"
        "NAME    READY   STATUS    RESTARTS   AGE\n"
        "web-0   1/1     Running   0          5m\n"
        "```\n"
    )
    assert command.language == "console"
    assert command.lines == (2, 4)
    assert command.text.splitlines()[0] == "$ kubectl get pods"
    assert "web-0   1/1     Running" in command.text


def test_an_unlabelled_helm_block_is_a_shell_command() -> None:
    command = only_command(
        "安装：\n\n```\nhelm install my-release bitnami/nginx --set replicaCount=2\n```\n"
    )
    assert command.language == "shell"
    assert command.text == "helm install my-release bitnami/nginx --set replicaCount=2"
    assert command.lines == (4, 4)


def test_a_root_prompt_in_an_unlabelled_block_is_a_command() -> None:
    command = only_command("```text\n# kubectl drain node-1 --ignore-daemonsets\n```\n")
    assert command.language == "shell"


def test_a_list_of_flags_is_a_command() -> None:
    command = only_command(
        "kubelet 的安全设置：\n"
        "\n"
        "```\n"
        "--anonymous-auth=false\n"
        "--authorization-mode=Webhook\n"
        "--read-only-port=0\n"
        "```\n"
    )
    assert command.lines == (4, 6)
    assert command.text.splitlines() == [
        "--anonymous-auth=false", "--authorization-mode=Webhook", "--read-only-port=0",
    ]


def test_a_component_with_its_flags_is_a_command() -> None:
    command = only_command("```\nkube-scheduler --master=127.0.0.1:8080 --v=2\n```\n")
    assert command.text.startswith("kube-scheduler")


def test_the_fence_word_is_kept_as_the_language() -> None:
    assert only_command("```PowerShell\nGet-Service kubelet\n```\n").language == "powershell"
    assert only_command("```sh\nminikube start\n```\n").language == "sh"
    assert only_command("```zsh\nkind create cluster\n```\n").language == "zsh"


def test_citation_lines_cover_the_commands_not_the_blank_lines_around_them() -> None:
    note = (
        "# 扩容\n"  # 1
        "\n"  # 2
        "```bash\n"  # 3
        "\n"  # 4
        "kubectl scale deployment web --replicas=3   \n"  # 5
        "kubectl rollout status deployment/web\n"  # 6
        "\n"  # 7
        "```\n"  # 8
    )
    command = only_command(note)
    assert command.lines == (5, 6)
    # Verbatim, without trailing whitespace: the text is exactly the cited lines.
    cited = note.split("\n")[command.lines[0] - 1 : command.lines[1]]
    assert command.text == "\n".join(line.rstrip() for line in cited)


def test_a_comment_then_a_command_is_a_command() -> None:
    command = only_command("```\n# 先装好 chart 仓库\nhelm repo add bitnami https://x.example\n```\n")
    assert command.lines == (2, 3)  # the comment explains the command: it stays


def test_a_block_longer_than_the_cap_is_not_offered() -> None:
    # Such a block is a script or a pasted log; its text is still in the chunk.
    lines = "\n".join(f"kubectl label node node-{i} role=worker" for i in range(41))
    assert MAX_COMMAND_LINES == 40
    assert neither(f"```bash\n{lines}\n```\n")
    just_fits = "\n".join(lines.split("\n")[:40])
    assert only_command(f"```bash\n{just_fits}\n```\n").lines == (2, 41)


# --------------------------------------------------------------------------- YAML


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def test_a_yaml_manifest_is_yaml_not_a_command() -> None:
    found = code_of(f"# 部署\n\n```yaml\n{DEPLOYMENT}```\n")
    assert found.commands == []
    assert [(e.kind, e.lines) for e in found.yaml] == [("Deployment", (4, 19))]


def test_an_unlabelled_manifest_is_yaml() -> None:
    found = code_of(f"```\n{DEPLOYMENT}```\n")
    assert found.commands == [] and [e.kind for e in found.yaml] == ["Deployment"]


def test_a_manifest_in_a_bash_fence_is_no_command() -> None:
    assert neither(f"```bash\n{DEPLOYMENT}```\n")


def test_a_command_printing_a_manifest_is_a_command() -> None:
    command = only_command(f"```bash\n# kubectl get deploy web -o yaml\n{DEPLOYMENT}```\n")
    assert command.text.startswith("# kubectl get deploy web -o yaml\napiVersion: apps/v1")


# --------------------------------------------------------------------------- neither


@pytest.mark.parametrize(
    "note",
    [
        "```go\nfunc main() {\n\tfmt.Println(\"kubectl\")\n}\n```\n",
        '```json\n{"kind": "Pod", "apiVersion": "v1"}\n```\n',
        '```bash\n{\n  "name": "web"\n}\n```\n',
        "```bash\nNAME    READY   STATUS    AGE\nweb-0   1/1     Running   5m\n```\n",
        "```\nNAME    READY   STATUS\nweb-0   1/1     Running\n```\n",
        "```text\n请求 -> Ingress -> Service -> Pod\n```\n",
        "```bash\nHTTP/1.1 200 OK\nContent-Type: text/html\n```\n",
        "```bash\n# 只有注释\n```\n",
        "```bash\n\n   \n```\n",
        "```python\nimport os\nos.system('kubectl get pods')\n```\n",
        "```\n# 这是一段说明\n```\n",
    ],
    ids=[
        "go", "json", "json-in-bash", "output-in-bash", "unlabelled-output", "diagram",
        "http-response", "comment-only", "empty", "python", "unlabelled-comment",
    ],
)
def test_program_code_data_and_output_are_neither(note: str) -> None:
    assert neither(note)


# --------------------------------------------------------------------------- the index


NOTE = f"""\
# 部署应用

先创建 Deployment：

```yaml
{DEPLOYMENT}```

## 查看状态

```console
$ kubectl get deploy web
NAME   READY   UP-TO-DATE   AVAILABLE   AGE
web    1/1     1            1           10s
```

## 安装 chart

```
helm install my-release bitnami/nginx
```

## 说明

这里没有命令。
"""


@pytest.fixture
def built(hashing_settings: Settings, tmp_path: Path) -> Settings:
    corpus = tmp_path / "commands-corpus"
    corpus.mkdir()
    (corpus / "deploy.md").write_text(NOTE, encoding="utf-8")
    report = build_index(hashing_settings, HashingEmbedder(), Tokenizer(), corpus=[corpus])
    assert (report.yaml_examples, report.commands) == (1, 2)
    return hashing_settings


def test_chunks_point_at_their_commands_after_a_round_trip(built: Settings) -> None:
    index = load_index(built.index_dir)
    assert index.manifest.command_count == len(index.commands) == 2
    by_heading = {chunk.heading[-1]: chunk for chunk in index.chunks}
    status = by_heading["查看状态"]
    (i,) = status.command_ids
    assert index.commands[i] == CommandExample(
        source="deploy.md",
        lines=(27, 29),
        language="console",
        text=(
            "$ kubectl get deploy web\n"
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\n"
            "web    1/1     1            1           10s"
        ),
    )
    (j,) = by_heading["安装 chart"].command_ids
    assert index.commands[j].text == "helm install my-release bitnami/nginx"
    assert index.commands[j].lines == (35, 35)
    assert by_heading["部署应用"].command_ids == () and len(by_heading["部署应用"].yaml_ids) == 1
    assert by_heading["说明"].command_ids == ()
    # The cited lines are the note's own lines.
    note_lines = NOTE.split("\n")
    for command in index.commands:
        first, last = command.lines
        assert "\n".join(note_lines[first - 1 : last]) == command.text


def _rewrite_chunks(build: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Edit the chunk records as a faulty build would write them (offsets kept in step)."""
    path = build / ChunkTable.FILE
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    ChunkTable.write(build, [Chunk.from_json(edit(row)) for row in rows],
                     len(np.load(build / ChunkTable.YAML_OWNER)))


def test_a_command_id_out_of_range_is_a_corrupt_index(built: Settings) -> None:
    build = current_build(built.index_dir)
    assert build is not None

    def point_past_the_end(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "command_ids": [99]} if row["command_ids"] else row

    _rewrite_chunks(build, point_past_the_end)
    with pytest.raises(IndexCorruptError) as caught:
        load_index(built.index_dir)
    assert "commands.jsonl" in str(caught.value) and "notesqa index --out" in str(caught.value)


def test_a_lost_command_line_is_a_corrupt_index(built: Settings) -> None:
    build = current_build(built.index_dir)
    assert build is not None
    path = build / "commands.jsonl"
    path.write_text(path.read_text("utf-8").splitlines(keepends=True)[0], "utf-8")
    with pytest.raises(IndexCorruptError, match="commands.jsonl"):
        load_index(built.index_dir)


def test_an_index_of_the_previous_format_is_refused_by_its_version(built: Settings) -> None:
    build = current_build(built.index_dir)
    assert build is not None
    manifest_file = build / "manifest.json"
    manifest = json.loads(manifest_file.read_text("utf-8"))
    del manifest["command_count"]  # format 3 manifests had no such field
    manifest["format_version"] = 3
    manifest_file.write_text(json.dumps(manifest), "utf-8")
    (build / "commands.jsonl").unlink()
    with pytest.raises(IndexNotFoundError, match="索引格式版本 3") as caught:
        load_index(built.index_dir)
    assert not isinstance(caught.value, IndexCorruptError)
