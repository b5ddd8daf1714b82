"""ONNX export with int8 dynamic quantisation, written into the model directory.

    export_onnx(model_dir: Path, quantize: bool = True, opset: int = 17) -> Path

The lead wires this as `yuqing models export-onnx [DIR]`. It writes `model.onnx` next to the
safetensors weights and re-records the manifest (the ONNX file gets its sha256 like every other
file, and `manifest.onnx` says how it was made), so the strict loader verifies it too.
`Classifier` uses it when present and onnxruntime is installed (CPU only).

Why int8 dynamic quantisation: on a CPU the encoder's matmuls dominate and int8 weights cut their
memory traffic four-fold; dynamic (per-batch activation scales) needs no calibration set. Why the
TorchScript exporter (`dynamo=False`): the dynamo exporter needs `onnxscript`, which the project
does not depend on. Attention is exported in its eager form (plain matmul + softmax) because that
is what ONNX Runtime's quantiser and graph optimiser recognise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from nlp.errors import ModelError
from nlp.manifest import read_manifest, write_manifest
from nlp.modeldir import load

ONNX_FILE = "model.onnx"
INPUTS = ["input_ids", "attention_mask", "rumor_features"]
OUTPUTS = ["sentiment_logits", "rumor_logit", "embedding"]


class _Wrapper(torch.nn.Module):
    """Tuple outputs (ONNX has no dataclasses)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rumor_features: torch.Tensor):  # type: ignore[no-untyped-def]
        out = self.model(input_ids, attention_mask, rumor_features)
        return out.sentiment_logits, out.rumor_logit, out.embedding


def export_onnx(model_dir: Path | str, quantize: bool = True, opset: int = 17) -> Path:
    """Export the verified model in `model_dir` to `model_dir/model.onnx` and re-sign the manifest."""
    try:
        import onnx  # noqa: F401
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ModelError(f"ONNX export needs onnx and onnxruntime (pip install 'yuqing[onnx]'): {e}") from None
    model_dir = Path(model_dir)
    lm = load(model_dir)
    model = lm.model.float().eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    n_feat = model.rumor_head[0].in_features - model.config.hidden_size
    ids = torch.tensor([[lm.tokenizer.cls_token_id, 10, 11, 12, lm.tokenizer.sep_token_id]] * 2)
    mask = torch.ones_like(ids)
    feats = torch.zeros((2, n_feat))
    target = model_dir / ONNX_FILE
    with tempfile.TemporaryDirectory() as td:
        fp32 = Path(td) / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapper(model), (ids, mask, feats), str(fp32), input_names=INPUTS, output_names=OUTPUTS,
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                              "rumor_features": {0: "batch"}, "sentiment_logits": {0: "batch"},
                              "rumor_logit": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=opset, dynamo=False, do_constant_folding=True,
            )
        tmp = model_dir / (ONNX_FILE + ".tmp")
        if quantize:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        else:
            tmp.write_bytes(fp32.read_bytes())
        tmp.replace(target)
    m = read_manifest(model_dir)
    extra = dict(m.model_extra or {})
    extra["onnx"] = {"file": ONNX_FILE, "opset": opset, "quantization": "dynamic int8 (onnxruntime)" if quantize else "none (fp32)",
                     "inputs": INPUTS, "outputs": OUTPUTS, "exported_from": "model.safetensors"}
    write_manifest(model_dir, m.model_copy(update=extra))
    return target


def checksum_main(argv: list[str]) -> int:
    """`yuqing models checksum DIR`: write DIR/sha256sums (coreutils format) for a model directory
    without our manifest (e.g. one fetched with `hf download`), on the machine that downloaded it."""
    from nlp.single_task import write_sums

    p = argparse.ArgumentParser(prog="yuqing models checksum", description=checksum_main.__doc__.split("\n")[0])
    p.add_argument("model_dir", type=Path)
    a = p.parse_args(argv)
    try:
        print(write_sums(a.model_dir))
    except ModelError as e:
        print(f"checksum: {e}", file=sys.stderr)
        return 2
    return 0


def verify_main(argv: list[str]) -> int:
    """`yuqing models verify DIR`: check a model directory's files against its manifest.json (our
    models) or its sha256sums (a standard model); exit 2 naming the first file that differs."""
    from nlp.manifest import MANIFEST, verify
    from nlp.single_task import verify_sums

    p = argparse.ArgumentParser(prog="yuqing models verify", description=verify_main.__doc__.split("\n")[0])
    p.add_argument("model_dir", type=Path)
    a = p.parse_args(argv)
    try:
        if (a.model_dir / MANIFEST).exists():
            m = read_manifest(a.model_dir)
            verify(a.model_dir, m)
            n = len(m.files)
        else:
            n = len(verify_sums(a.model_dir))
    except ModelError as e:
        print(f"verify: {e}", file=sys.stderr)
        return 2
    print(f"ok: {n} files match ({a.model_dir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`yuqing models export-onnx DIR | checksum DIR | verify DIR`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["checksum"]:
        return checksum_main(argv[1:])
    if argv[:1] == ["verify"]:
        return verify_main(argv[1:])
    p = argparse.ArgumentParser(prog="yuqing models export-onnx", description="Export a model directory to ONNX (int8).")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--no-quantize", action="store_true")
    if argv[:1] == ["export-onnx"]:  # called as `yuqing models export-onnx DIR`
        argv = argv[1:]
    a = p.parse_args(argv)
    try:
        out = export_onnx(a.model_dir, quantize=not a.no_quantize)
    except ModelError as e:
        print(f"export-onnx: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
