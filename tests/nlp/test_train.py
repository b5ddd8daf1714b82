"""A short real training run: the loss falls, and the saved model predicts what the trained one did."""

from __future__ import annotations

from typing import Any

import torch

from nlp.encoding import encode, pad
from nlp.modeldir import load
from nlp.normalize import normalize


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_loss_falls(trained: dict[str, Any]) -> None:
    losses = trained["losses"]
    assert trained["steps"] == len(losses) == 120
    assert _mean(losses[-20:]) < 0.7 * _mean(losses[:20]), (losses[:20], losses[-20:])
    for task, ls in trained["per_task"].items():
        assert len(ls) >= 10, task
        assert _mean(ls[-5:]) < _mean(ls[:5]), task


def test_reloaded_model_predicts_the_same(trained: dict[str, Any]) -> None:
    texts = ["酒店很好，很满意", "bad awful service", "الخدمة رائعة", "", "紧急扩散 内部消息"]
    tok = trained["tokenizer"]
    ids = encode(tok, [normalize(t) for t in texts], 64)
    x, m = pad(ids, tok.pad_token_id)
    feats = torch.rand(len(texts), trained["model"].rumor_head[0].in_features - trained["model"].config.hidden_size)
    mem = trained["model"].eval()
    loaded = load(trained["dir"]).model
    with torch.inference_mode():
        a, b = mem(x, m, feats), loaded(x, m, feats)
    torch.testing.assert_close(a.sentiment_logits, b.sentiment_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.rumor_logit, b.rumor_logit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.embedding, b.embedding, atol=1e-5, rtol=1e-5)
    # and the reloaded tokenizer is the trained one
    assert load(trained["dir"]).tokenizer.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_the_tiny_model_learned_the_synthetic_labels(trained: dict[str, Any]) -> None:
    """The card's figures are measured, and on easy synthetic data they must beat chance."""
    ev = trained["evaluation"]
    assert ev["sentiment"]["zh"]["accuracy"] > 0.6  # chance 0.5
    assert ev["sentiment"]["zh"]["scoring"].startswith("two-class")
    assert ev["rumor"]["publish_time"]["auc"] > 0.6


def test_float16_weights_stay_close(trained: dict[str, Any], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nlp.manifest import read_manifest
    from nlp.modeldir import save

    m = read_manifest(trained["dir"])
    out = tmp_path / "half"
    save(trained["model"], trained["tokenizer"], m, out, dtype=torch.float16)
    assert (out / "model.safetensors").stat().st_size < 0.6 * (trained["dir"] / "model.safetensors").stat().st_size
    tok = trained["tokenizer"]
    x, msk = pad(encode(tok, ["酒店很好", "bad awful"], 64), tok.pad_token_id)
    with torch.inference_mode():
        a = torch.softmax(trained["model"].eval()(x, msk).sentiment_logits, -1)
        b = torch.softmax(load(out).model(x, msk).sentiment_logits, -1)
    torch.testing.assert_close(a, b, atol=5e-3, rtol=0)
