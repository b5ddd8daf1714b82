"""ONNX export + int8 quantisation + ONNX Runtime inference through the same Classifier."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from nlp.classifier import Classifier, ClassifyInput  # noqa: E402
from nlp.errors import ModelError  # noqa: E402
from nlp.manifest import read_manifest  # noqa: E402
from nlp.onnx_export import export_onnx  # noqa: E402

TEXTS = ["酒店很好，很满意", "bad awful service today", "الخدمة رائعة جدا", "紧急扩散 内部消息 医院", "", "x" * 5000]


def test_export_int8_and_run_with_onnxruntime(model_copy: Path) -> None:
    torch_clf = Classifier.load(model_copy, backend="torch")
    out = export_onnx(model_copy)
    assert out == model_copy / "model.onnx" and out.stat().st_size > 0
    m = read_manifest(model_copy)
    assert "model.onnx" in m.files and m.model_extra["onnx"]["quantization"].startswith("dynamic int8")
    onnx_clf = Classifier.load(model_copy)  # auto: the directory has an ONNX file
    assert onnx_clf.backend == "onnx" and torch_clf.backend == "torch"
    items = [ClassifyInput(id=str(i), text=t, lang="zh", time=1400000000, user={"followers": 10}) for i, t in enumerate(TEXTS)]
    a, b = torch_clf.classify(items), onnx_clf.classify(items)
    for x, y in zip(a, b):
        assert x.model == y.model
        for k in x.sentiment_scores:
            assert abs(x.sentiment_scores[k] - y.sentiment_scores[k]) < 0.1
        assert abs(x.rumor - y.rumor) < 0.1


def test_tampered_onnx_is_rejected(model_copy: Path) -> None:
    export_onnx(model_copy)
    f = model_copy / "model.onnx"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ModelError, match=r"model\.onnx: sha256"):
        Classifier.load(model_copy)


def test_onnx_backend_without_export_is_a_clear_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no ONNX export"):
        Classifier.load(tiny_model_dir, backend="onnx")
