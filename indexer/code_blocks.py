"""What a note's fenced code blocks hold: YAML manifests, commands, or neither.

`extract_code` is the one entry point: each block of a chunk is classified once and becomes
YAML examples (`indexer.yaml_examples`, checked by `indexer.manifest_schema`), one command
example, or nothing.

* **YAML**: a fence labelled ``yaml``/``yml``, or an unlabelled (``text``) fence that parses
  to a manifest with ``apiVersion`` and ``kind``.
* **Commands**: a fence labelled with a shell (``bash``, ``sh``, ``console``, ``powershell``
  …) whose first line reads as a command, or an unlabelled fence that opens with a prompt
  (``$ kubectl get pods``), a known CLI (``helm install …``) or a list of flags
  (``--anonymous-auth=false``).  Labels are not trusted blindly: notes put JSON, manifests
  and command output in ``bash`` fences too, and those are not commands.

Program code (``go``, ``json``, ``python`` …) is neither.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from indexer.markdown import _CLI_WORDS, Code
from indexer.types import CommandExample, YamlExample
from indexer.yaml_examples import extract_examples, fence_language, looks_like_manifest

if TYPE_CHECKING:  # a type only; importing it loads the Kubernetes schema machinery
    from indexer.manifest_schema import ManifestValidator

__all__ = [
    "MAX_COMMAND_CHARS",
    "MAX_COMMAND_LINES",
    "CodeExamples",
    "command_example",
    "extract_code",
    "is_yaml_block",
]

# An answer offers a command block as something to copy. Longer blocks are install scripts
# or pasted session logs: the command a question is about drowns in them, so they are not
# offered (their text still is in the chunk, so retrieval and citations keep them).
MAX_COMMAND_LINES = 40
MAX_COMMAND_CHARS = 4_000

_UNLABELLED = frozenset({"", "text", "txt", "plain", "plaintext"})
_SHELLS = frozenset(
    {"bash", "sh", "shell", "console", "zsh", "fish", "ksh", "terminal",
     "shell-session", "shellsession"}
)
# Windows shells: their commands (Get-Item, dir) look like nothing the checks below know,
# so the label is trusted more.
_WINDOWS_SHELLS = frozenset({"powershell", "pwsh", "ps1", "cmd", "bat", "batch"})

# The command words a heading line is checked for (indexer/markdown.py), plus the
# Kubernetes components and cloud CLIs notes show command lines of.
_CLI = frozenset(_CLI_WORDS.split("|")) | frozenset(
    {
        "kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
        "kubectx", "kubens", "kustomize", "skaffold", "velero", "linkerd", "kops", "eksctl",
        "gcloud", "az", "aws", "terraform", "nerdctl", "containerd", "runc", "cfssl",
        "openssl", "ssh", "scp", "journalctl", "iptables", "ip", "brew", "choco", "snap",
    }
)
# Words a shell line starts with that are not programs on their own.
_SHELL_WORDS = frozenset(
    {"export", "cd", "source", "echo", "cat", "for", "if", "while", "set", "unset",
     "alias", "eval", "exec", "mkdir", "chmod", "chown", "tar", "cp", "mv", "rm", "ls"}
)

# "$ cmd", "# cmd" (root), "user@host:~$ cmd", "[root@host ~]# cmd", "/ # cmd" (busybox),
# "➜  ~ cmd" (oh-my-zsh), "PS C:\k> cmd".
_PROMPT = re.compile(
    r"^(?:[$#%]|[\w.-]+@[\w.-]+(?::\S*?)?[$#]|\[[^\]\n]+\][$#]|[~/]\S*\s[$#]|➜\s+\S+"
    r"|PS [^>\n]*>)\s+(?P<rest>\S.*)$"
)
_FLAG = re.compile(r"^--?[A-Za-z][\w.-]*(?:[=\s].*)?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
_PROGRAM = re.compile(r"^[a-z][a-z0-9_+-]*$")  # no dots: "ca-key.pem" is a file
# "./boot.sh", "/usr/bin/kubelet", "bin/spark-submit", "hack/local-up-cluster.sh".
_PATH_PROGRAM = re.compile(
    r"^(?:\.{0,2}/|~/|s?bin/)\S+$|^[\w.-]+(?:/[\w.-]+)+\.(?:sh|py|ps1)$"
)
_POWERSHELL = re.compile(r"^(?:[A-Z][a-z]+-[A-Z][A-Za-z]*(?=\s|$)|\$\w+\s*=)")  # Get-Item
_SUBSHELL = re.compile(r"^(?:\$\(|\(\s*[a-z])")
_TRAILING_COMMENT = re.compile(r"\s+#.*$")
_COLUMNS = re.compile(r"\S\s{2,}\S")  # aligned columns: command output, not a command


@dataclass(frozen=True)
class CodeExamples:
    """What the code blocks of one chunk offer, in block order."""

    yaml: list[YamlExample] = field(default_factory=list)
    commands: list[CommandExample] = field(default_factory=list)


def extract_code(
    codes: Sequence[Code], source: str, validator: ManifestValidator | None = None
) -> CodeExamples:
    """YAML examples and command examples of ``codes`` (the blocks of one chunk of note
    ``source``); manifests are checked with ``validator`` when one is given."""
    found = CodeExamples()
    for code in codes:
        if is_yaml_block(code):
            found.yaml.extend(
                extract_examples(
                    code.code, source, (code.content_start, code.content_end), validator
                )
            )
            continue
        command = command_example(code, source)
        if command is not None:
            found.commands.append(command)
    return found


def is_yaml_block(code: Code) -> bool:
    """A ``yaml`` fence, or an unlabelled one holding a manifest."""
    language = fence_language(code.info)
    if language in ("yaml", "yml"):
        return True
    return language in _UNLABELLED and looks_like_manifest(code.code)


def command_example(code: Code, source: str) -> CommandExample | None:
    """The block as a command example, or None when it holds no commands (or is too long to
    offer, see MAX_COMMAND_LINES)."""
    language = fence_language(code.info)
    if language not in _SHELLS and language not in _WINDOWS_SHELLS and language not in _UNLABELLED:
        return None  # go, json, python, yaml, dockerfile …
    lines = [line.rstrip() for line in code.code.split("\n")]
    # Trim blank lines at either end so the citation covers the commands themselves.
    used = [i for i, line in enumerate(lines) if line]
    if not used:
        return None
    first, last = used[0], used[-1]
    lines = lines[first : last + 1]
    text = "\n".join(lines)
    if len(lines) > MAX_COMMAND_LINES or len(text) > MAX_COMMAND_CHARS:
        return None
    if _is_data(lines):
        return None
    if language in _UNLABELLED:
        if not _opens_with_command(lines, strict=True):
            return None
        language = "shell"  # what the fence did not say (see CommandExample.language)
    elif language in _SHELLS and not _opens_with_command(lines, strict=False):
        return None
    start = code.content_start + first
    return CommandExample(source=source, lines=(start, start + len(lines) - 1),
                          language=language, text=text)


def _is_data(lines: Sequence[str]) -> bool:
    """JSON or a Kubernetes manifest, whatever the fence says."""
    text = "\n".join(lines)
    head = text.lstrip()
    if head.startswith(("{", '"')):
        return True
    if head.startswith("[") and not _PROMPT.match(head.split("\n", 1)[0]):
        try:
            json.loads(text)
        except ValueError:
            return False  # "[all]" inventory, "[[local|localrc]]": config, not JSON
        return True
    # "# kubectl get secret x -o yaml" and its output reads as a commented manifest.
    return not _opens_with_prompt(lines) and looks_like_manifest(text)


def _opens_with_prompt(lines: Sequence[str]) -> bool:
    first = next((line.strip() for line in lines if line.strip()), "")
    prompt = _PROMPT.match(first)
    return prompt is not None and (first[0] != "#" or _first_word(prompt["rest"]) in _CLI)


def _opens_with_command(lines: Sequence[str], *, strict: bool) -> bool:
    """Does the first line that is not a comment read as a command?

    ``strict`` (unlabelled fences): only a prompt, a known CLI or flags count.  Otherwise
    (a shell fence) any program-like first word does, but not a first line of output:
    column headers (``NAME  READY``), log lines, prose.
    """
    # After a root prompt "# ", a shell fence also accepts shell words ("# cat /etc/x");
    # an unlabelled block's "# set up the node" is prose.
    root_words = _CLI if strict else _CLI | _SHELL_WORDS
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        prompt = _PROMPT.match(line)
        if prompt is not None:
            if line[0] != "#" or _first_word(prompt["rest"]) in root_words:
                return True
            continue  # "# install the chart": a comment, the next line decides
        if line.startswith("#"):
            continue
        if line.startswith("$") and _first_word(line[1:]) in _CLI:
            return True  # "$kubectl get pods": a prompt without its space
        if _is_flag_line(line):
            # In an unlabelled block a flag stands for itself only among flags.
            return not strict or _is_flag_list(lines)
        if _is_program_with_flags(line):
            return True
        word = _first_word(line)
        if word in _CLI:
            return True
        if strict:
            return False
        return bool(
            word in _SHELL_WORDS
            or _ASSIGNMENT.match(line)
            or _PATH_PROGRAM.match(word)
            or _POWERSHELL.match(line)
            or _SUBSHELL.match(line)
            or _looks_like_invocation(line)
        )
    return False


def _looks_like_invocation(line: str) -> bool:
    """``jx get pipelines``, ``modprobe ixgbevf``: an unknown program with arguments.

    Not output that happens to start with a lowercase word: aligned columns, ``key:``
    tokens (``nginx version: …``, log lines), a quoted second word (``serviceaccount
    "admin" created``), file names (``ca-key.pem``).
    """
    words = _TRAILING_COMMENT.sub("", line).split()
    return (
        len(words) >= 2
        and bool(_PROGRAM.match(words[0]))
        and not _COLUMNS.search(_TRAILING_COMMENT.sub("", line))
        and not any(w.endswith(":") for w in words)
        and words[1][0] not in "\"'"
    )


def _first_word(line: str) -> str:
    words = line.split(maxsplit=1)
    return words[0] if words else ""


def _is_flag_line(line: str) -> bool:
    return bool(_FLAG.match(line.rstrip("\\").rstrip()))


def _is_flag_list(lines: Sequence[str]) -> bool:
    """``--anonymous-auth=false`` lines (comments and blank lines aside)."""
    body = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return bool(body) and all(_is_flag_line(line) for line in body)


def _is_program_with_flags(line: str) -> bool:
    """``kube-scheduler --master=… --v=2``: a program name, then flags."""
    words = line.split()
    return (
        len(words) >= 2
        and bool(_PROGRAM.match(words[0]) or _PATH_PROGRAM.match(words[0]))
        and words[1].startswith("--")
        and _is_flag_line(words[1])
    )
