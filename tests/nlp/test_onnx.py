"""ONNX export + int8 quantisation + ONNX Runtime inference through the same Classifier."""

from __future__ import annotations

import json
import os
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


def test_contract_on_two_streams_answers_like_one_stream_in_order(model_copy: Path, torch_threads: None) -> None:
    """`yuqing classify --threads 2` over an ONNX model: whole chunks go to two streams at once and
    the output is byte-for-byte that of one stream (same chunks, same encoder batches), one line per
    input line in input order, bad lines answered in place."""
    import io

    from nlp import contract

    export_onnx(model_copy)
    words = ["停水三天了", "great job today", "الخدمة سيئة", "公交又晚点", "谣言吧 不实", "love it"]
    lines = []
    for i in range(2 * contract.CHUNK + 37):
        lines.append("{broken" if i % 401 == 5 else json.dumps({"id": i, "text": f"{words[i % 6]} {i}"}, ensure_ascii=False))
    data = "".join(x + "\n" for x in lines)
    outs = {}
    for n in (1, 2):
        out, err = io.StringIO(), io.StringIO()
        assert contract.main(["--model", str(model_copy), "--topics", os.devnull, "--threads", str(n),
                              "--batch-size", "8"], io.StringIO(data), out, err) == 0, err.getvalue()
        outs[n] = out.getvalue()
    assert outs[1] == outs[2]
    got = [json.loads(x) for x in outs[2].splitlines()]
    assert [o.get("id", o.get("line")) for o in got] == [i + 1 if i % 401 == 5 else str(i) for i in range(len(lines))]


def test_a_batch_that_fails_is_retried_item_by_item(model_copy: Path, monkeypatch: pytest.MonkeyPatch,
                                                    torch_threads: None) -> None:
    """Fault injection: when classifying a batch raises, each item is classified alone and only the
    one at fault answers an error (the rest of its batch is not lost)."""
    export_onnx(model_copy)
    clf = Classifier.load(model_copy, threads=2, batch_size=2)
    real = Classifier._predict

    def failing(self: Classifier, items):  # type: ignore[no-untyped-def]
        if any(it.id == "boom" for it in items):
            raise RuntimeError("injected")
        return real(self, items)

    monkeypatch.setattr(Classifier, "_predict", failing)
    batches = [("a", [ClassifyInput(id=f"a{i}", text="停水了") for i in range(3)]),
               ("b", [ClassifyInput(id="b0", text="ok"), ClassifyInput(id="boom", text="x"), ClassifyInput(id="b2", text="好")])]
    got = dict(clf.predict_batches(batches))
    assert [p.id for p in got["a"]] == ["a0", "a1", "a2"]
    assert got["b"][0].id == "b0" and got["b"][2].id == "b2"
    assert got["b"][1] == "classification failed: RuntimeError: injected"
