"""The committed bootstrap model: verified load, real forward pass, an honest card."""

from __future__ import annotations

import json

import pytest

from nlp.classifier import Classifier, ClassifyInput
from nlp.manifest import read_manifest

from .conftest import BOOTSTRAP

pytestmark = pytest.mark.skipif(not (BOOTSTRAP / "manifest.json").exists(), reason="models/bootstrap not built yet")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(BOOTSTRAP, device="cpu")


def test_card_is_a_measured_bootstrap() -> None:
    m = read_manifest(BOOTSTRAP)
    assert m.bootstrap is True and m.name == "bootstrap"
    assert "bootstrap" in (BOOTSTRAP / "README.md").read_text(encoding="utf-8").lower()
    ev = m.evaluation
    assert ev["measured_on"].startswith("the saved model directory")
    for key in ("zh", "en", "ar", "ar_sarcasm"):
        r = ev["sentiment"][key]
        assert r["n"] > 300 and 0 <= r["macro_f1"] <= 1 and sum(map(sum, r["confusion"])) == r["n"]
    for point in ("publish_time", "first_hour", "text_only"):
        assert ev["rumor"][point]["n"] == 334 and 0 <= ev["rumor"][point]["auc"] <= 1
    assert m.training["data_files_sha256"] and m.training["command"].startswith("python -m nlp.train")
    assert (BOOTSTRAP / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    # the README's figures are the manifest's figures
    readme = (BOOTSTRAP / "README.md").read_text(encoding="utf-8")
    assert f"| {ev['sentiment']['zh']['accuracy']} |" in readme


def test_real_forward_pass_in_three_languages(clf: Classifier) -> None:
    items = [
        ClassifyInput(id="zh-pos", text="酒店环境很好，服务热情，下次还会再来"),
        ClassifyInput(id="zh-neg", text="太差了，房间又脏又吵，再也不会来了"),
        ClassifyInput(id="en", text="The council's response to the flood was fast and helpful"),
        ClassifyInput(id="ar", text="الخدمة سيئة جدا ولا أحد يرد على الشكاوى"),
        ClassifyInput(id="rumor", text="紧急扩散！某医院出现不明病毒，已经死了好几个人，转发救人！", time=1400000000,
                      user={"verified": False, "followers": 50}),
    ]
    preds = {p.id: p for p in clf.predict(items)}
    assert {k: p.lang for k, p in preds.items()} == {"zh-pos": "zh", "zh-neg": "zh", "en": "en", "ar": "ar", "rumor": "zh"}
    for p in preds.values():
        c = p.classification
        assert c.model == clf.model_id == f"bootstrap@{read_manifest(BOOTSTRAP).version}"
        assert abs(sum(c.sentiment_scores.values()) - 1) < 1e-4
    # a trained model, not random weights: the two Chinese reviews are told apart
    neg = lambda k: preds[k].classification.sentiment_scores["negative"]  # noqa: E731
    assert neg("zh-neg") > neg("zh-pos")


def test_manifest_lists_only_real_files() -> None:
    m = json.loads((BOOTSTRAP / "manifest.json").read_text(encoding="utf-8"))
    assert set(m["files"]) == {p.name for p in BOOTSTRAP.iterdir() if p.name != "manifest.json"}
