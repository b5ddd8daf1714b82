"""The classify fast paths compute the same numbers as the plain formulation (within 1e-5).

Speed is measured in `bench/classify.py`; here only equivalence: the packed CPU encoder path
(`nlp.modeling.PackedInference`) against the transformers module it replaces, and the n-gram
models' element-wise CSR weighting against the sparse-matrix formula it replaces, on the shipped
default model and real posts from ../shared/data when they are present, else on the test fixture.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from nlp.classifier import Classifier
from nlp.encoding import encode, length_buckets, pad
from nlp.modeldir import load
from nlp.modeling import PackedInference
from nlp.ngram import NgramModel
from nlp.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "models" / "default"
DATA = ROOT.parent / "shared" / "data" / "sentiment"


def _real_texts(n: int = 300) -> list[str]:
    """Mixed zh/en/ar real posts (all lengths, up to the 128-token cap), or skip."""
    files = [DATA / "zh" / "dev.jsonl", DATA / "en" / "extra_tweeteval.jsonl", DATA / "ar" / "extra_arsarcasm.jsonl"]
    if not all(f.exists() for f in files):
        pytest.skip("../shared/data is not present")
    rng = random.Random(1)
    texts: list[str] = []
    for f in files:
        rows = [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines()[:5000]]
        texts += rng.sample(rows, n // len(files))
    texts.append("长" * 3000)  # truncated head+tail to the full 128 tokens
    texts.append("")
    return [normalize(t) for t in texts]


def _compare_packed(model_dir: Path, texts: list[str]) -> None:
    loaded = load(model_dir, "cpu")
    model, tok = loaded.model, loaded.tokenizer
    packed = PackedInference(model)
    ids = encode(tok, texts, loaded.manifest.max_length)
    worst = 0.0
    with torch.inference_mode():
        for batch in length_buckets([len(r) for r in ids], 32):
            x, m = pad([ids[i] for i in batch], tok.pad_token_id)
            f = torch.rand(len(batch), model.n_rumor_features)
            a, b = model(x, m, f), packed(x, m, f)
            for k in ("sentiment_logits", "rumor_logit", "embedding"):
                worst = max(worst, float((getattr(a, k) - getattr(b, k)).abs().max()))
    assert worst < 1e-5, f"packed inference differs from the module by {worst}"


def test_packed_inference_matches_the_module_on_the_fixture(tiny_model_dir: Path) -> None:
    texts = [normalize(t) for t in ["这家酒店房间很差", "I love the new bus schedule " * 20, "الخدمة سيئة", "",
                                    "今天 the water office 很好 @someone https://t.co/abc 👍🏽", "ok"]]
    _compare_packed(tiny_model_dir, texts * 7)


@pytest.mark.skipif(not (DEFAULT / "manifest.json").exists(), reason="models/default not built yet")
def test_packed_inference_matches_the_module_on_real_posts() -> None:
    _compare_packed(DEFAULT, _real_texts())


def test_the_classifier_uses_the_packed_path_on_cpu_torch(tiny_model_dir: Path) -> None:
    clf = Classifier.load(tiny_model_dir, device="cpu", threads=1, backend="torch")
    assert clf.packed is not None


def _decision_by_sparse_formula(model: NgramModel, texts: list[str]) -> np.ndarray:
    """The n-gram transform written as sparse-matrix products (the formulation before the
    element-wise one): sublinear tf, times diag(idf), row L2 normalisation, stacked, @ coef.T."""
    blocks = []
    for X, idf in zip(model.featurizer.counts(texts), model.featurizer.idf or []):
        X = X.astype(np.float32)
        X.data = 1.0 + np.log(X.data)
        X = X @ sp.diags(idf)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        blocks.append(sp.diags((1.0 / norms).astype(np.float32)) @ X)
    z = np.asarray(sp.hstack(blocks, format="csr") @ model.coef.T) + model.intercept
    return z[:, 0] if len(model.classes) == 2 else z


@pytest.mark.skipif(not (DEFAULT / "manifest.json").exists(), reason="models/default not built yet")
def test_ngram_decisions_match_the_sparse_formula_on_real_posts() -> None:
    texts = _real_texts()
    names = sorted(p.stem for p in DEFAULT.glob("ngram_*.json"))
    assert names, "the default model has no n-gram models"
    for name in names:
        m = NgramModel.load(DEFAULT, name)
        got, want = m.decision(texts), _decision_by_sparse_formula(m, texts)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5, name
