"""The shipped default model (`models/default`): verified hybrid load, honest card, size budget."""

from __future__ import annotations

import json

import pytest

from nlp.classifier import Classifier, ClassifyInput
from nlp.manifest import read_manifest

from .conftest import ROOT

DEFAULT = ROOT / "models" / "default"
pytestmark = pytest.mark.skipif(not (DEFAULT / "manifest.json").exists(), reason="models/default not built yet")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(DEFAULT, device="cpu")


def test_card_reports_every_figure_beside_the_reference() -> None:
    m = read_manifest(DEFAULT)
    assert m.bootstrap is False and m.name == "default" and m.hybrid["blend"] == "blend.json"
    ev = m.evaluation
    assert ev["measured_on"].startswith("the saved model directory") and ev["split"] == "dev"
    for key in ("zh", "en", "ar", "ar_sarcasm"):
        assert ev["sentiment"][key]["n"] > 300 and key in ev["reference"]["sentiment"]
    for point in ("publish_time", "first_hour"):
        r = ev["rumor"][point]
        assert r["n"] == 334 and r["reliability"] and 0 <= r["ece"] <= 1
    assert ev["reference"]["rumor"]["n"] == 334
    readme = (DEFAULT / "README.md").read_text(encoding="utf-8")
    assert f"**{ev['sentiment']['zh']['accuracy']}**" in readme and "n-gram reference" in readme
    assert m.training["command"].startswith("python -m nlp.train_default")


def test_weights_fit_the_budget_and_manifest_lists_every_file() -> None:
    m = json.loads((DEFAULT / "manifest.json").read_text(encoding="utf-8"))
    names = {p.name for p in DEFAULT.iterdir() if p.name != "manifest.json"}
    assert set(m["files"]) == names
    weights = sum((DEFAULT / n).stat().st_size for n in names if n.endswith(".safetensors"))
    assert weights <= 25 * 1024 * 1024
    assert not any(n.endswith((".pkl", ".pickle", ".joblib", ".bin")) for n in names)


def test_real_blended_answers(clf: Classifier) -> None:
    assert clf.hybrid is not None
    items = [
        ClassifyInput(id="zh-pos", text="酒店环境很好，服务热情，下次还会再来"),
        ClassifyInput(id="zh-neg", text="太差了，房间又脏又吵，再也不会来了"),
        ClassifyInput(id="en-pos", text="I love this, what a wonderful day with friends!"),
        ClassifyInput(id="en-neg", text="This is the worst service ever, I hate waiting for hours"),
        ClassifyInput(id="ar", text="الخدمة سيئة جدا ولا أحد يرد على الشكاوى"),
        ClassifyInput(id="rumor", text="紧急扩散！某医院出现不明病毒，已经死了好几个人，转发救人！", time=1400000000,
                      user={"verified": False, "followers": 50}),
    ]
    p = {x.id: x.classification for x in clf.predict(items)}
    neg = lambda k: p[k].sentiment_scores["negative"]  # noqa: E731
    assert neg("zh-neg") > neg("zh-pos") and neg("en-neg") > neg("en-pos")
    assert p["en-pos"].sentiment == "positive" and p["en-neg"].sentiment == "negative"
    assert all(0.0 <= c.rumor <= 1.0 and abs(sum(c.sentiment_scores.values()) - 1) < 1e-4 for c in p.values())
    assert p["rumor"].model == f"default@{read_manifest(DEFAULT).version}"


def test_shipped_onnx_graph_serves_by_default_and_agrees_with_fp32(clf: Classifier) -> None:
    """The directory ships its int8 `model.onnx`; with onnxruntime (a main dependency) the CPU
    serves it, and its answers stay within quantisation error of the fp32 weights."""
    assert clf.backend == "onnx"
    fp32 = Classifier.load(DEFAULT, device="cpu", backend="torch")
    assert fp32.backend == "torch"
    texts = ["酒店环境很好，服务热情", "太差了，房间又脏又吵", "What a wonderful day with friends!",
             "The worst service ever, waiting for hours", "الخدمة سيئة جدا ولا أحد يرد", "紧急扩散！医院出现不明病毒，转发救人！"]
    items = [ClassifyInput(id=str(i), text=t) for i, t in enumerate(texts)]
    a = [x.classification for x in clf.predict(items)]
    b = [x.classification for x in fp32.predict(items)]
    for x, y in zip(a, b, strict=True):
        assert x.sentiment == y.sentiment
        assert max(abs(x.sentiment_scores[k] - y.sentiment_scores[k]) for k in x.sentiment_scores) < 0.05
        assert abs(x.rumor - y.rumor) < 0.05


def test_streams_deal_a_large_batch_in_parts_and_answer_in_input_order(torch_threads: None) -> None:
    """With 2 threads the ONNX classifier runs 2 streams of one thread each: a batch of at least
    one encoder batch per stream is dealt into interleaved parts classified at once. Every answer
    is the one its part gets alone, in input order; a smaller batch runs on one stream."""
    clf = Classifier.load(DEFAULT, device="cpu", threads=2, batch_size=4)
    assert clf.backend == "onnx" and clf.streams == 2
    base = ["酒店环境很好，服务热情", "太差了，房间又脏又吵，再也不会来了", "What a wonderful day with friends!",
            "The worst service ever, waiting for hours", "الخدمة سيئة جدا ولا أحد يرد", "紧急扩散！医院出现不明病毒，转发救人！",
            "", "ok", "أحب هذا المكان كثيرا"]
    items = [ClassifyInput(id=f"p{i}", text=base[i % len(base)] + " " * (i % 3), time=1400000000 + i)
             for i in range(22)]
    small = clf.predict(items[:7])  # under 2 x 4 items: one stream, the pool is never started
    assert clf._pool is None and [p.id for p in small] == [f"p{i}" for i in range(7)]
    got = clf.predict(items)
    assert clf._pool is not None
    assert [p.id for p in got] == [it.id for it in items]
    alone = {p.id: p for part in (items[0::2], items[1::2]) for p in clf._predict(part)}
    for p in got:
        assert p.classification == alone[p.id].classification and p.lang == alone[p.id].lang
    for a, b in zip(got, clf._predict(items), strict=True):  # one stream: int8 scales differ per batch
        assert a.classification.sentiment == b.classification.sentiment
        assert abs(a.classification.rumor - b.classification.rumor) < 0.05


def test_torch_backend_keeps_one_stream(torch_threads: None) -> None:
    assert Classifier.load(DEFAULT, device="cpu", backend="torch", threads=2).streams == 1
