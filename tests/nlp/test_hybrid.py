"""The hybrid (encoder + n-gram) model directory of `nlp.train_default`: built, verified, blended."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlp.classifier import Classifier, ClassifyInput
from nlp.errors import ModelError
from nlp.hybrid import BLEND, Hybrid, _sigmoid
from nlp.manifest import MANIFEST, read_manifest, sha256_file, write_manifest
from nlp.ngram import Block, Featurizer, NgramModel, fit_ngram


@pytest.fixture(scope="session")
def hybrid_build(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model_dir: Path) -> dict[str, Any]:
    from nlp.train_default import build

    out = tmp_path_factory.mktemp("models") / "hyb"
    ev = build(shared_data, out, encoder=tiny_model_dir, minutes=0, threads=1, seed=21, version="0.0.1",
               command="python -m nlp.train_default (test)", log=lambda s: None, bits=12)
    return {"dir": out, "evaluation": ev}


@pytest.fixture(scope="session")
def hybrid_dir(hybrid_build: dict[str, Any]) -> Path:
    return hybrid_build["dir"]


@pytest.fixture
def hybrid_copy(hybrid_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "hyb"
    shutil.copytree(hybrid_dir, dst)
    return dst


NGRAM_FILES = [f"ngram_{n}.{ext}" for n in ("sentiment_zh", "sentiment_en", "sentiment_ar", "rumor_text", "rumor_reposts")
               for ext in ("json", "safetensors")]


def test_hybrid_directory_loads_and_checksums_cover_the_ngram_files(hybrid_dir: Path) -> None:
    m = read_manifest(hybrid_dir)
    assert m.model_id == "hyb@0.0.1" and m.hybrid["blend"] == BLEND
    names = {p.name for p in hybrid_dir.iterdir()}
    assert set(NGRAM_FILES) | {BLEND, "model.safetensors", "tokenizer.json", "config.json", "README.md"} <= names
    assert set(m.files) == names - {MANIFEST}
    for rel, digest in m.files.items():
        assert sha256_file(hybrid_dir / rel) == digest
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    clf = Classifier.load(hybrid_dir, device="cpu")
    assert clf.hybrid is not None and set(clf.hybrid.files()) == set(NGRAM_FILES) | {BLEND}


def test_tampered_ngram_file_is_rejected(hybrid_copy: Path) -> None:
    f = hybrid_copy / "ngram_sentiment_en.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"ngram_sentiment_en\.safetensors: sha256 .* does not match"):
        Classifier.load(hybrid_copy, device="cpu")


def test_tampered_blend_is_rejected(hybrid_copy: Path) -> None:
    f = hybrid_copy / BLEND
    f.write_text(f.read_text().replace('"coef"', '"coef" ', 1))
    with pytest.raises(ModelError, match=r"blend\.json: sha256"):
        Classifier.load(hybrid_copy, device="cpu")


def test_unlisted_ngram_file_is_never_loaded(hybrid_copy: Path) -> None:
    m = read_manifest(hybrid_copy)
    files = dict(m.files)
    del files["ngram_rumor_reposts.safetensors"]
    path = hybrid_copy / MANIFEST
    data = json.loads(path.read_text())
    data["files"] = files
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"does not list ngram_rumor_reposts\.safetensors"):
        Classifier.load(hybrid_copy, device="cpu")


def test_malformed_ngram_weights_are_a_clear_error(hybrid_copy: Path) -> None:
    cfg = json.loads((hybrid_copy / "ngram_sentiment_en.json").read_text())  # a hashed model
    cfg["blocks"][0]["n_features"] *= 2  # shapes no longer match the weights
    (hybrid_copy / "ngram_sentiment_en.json").write_text(json.dumps(cfg))
    write_manifest(hybrid_copy, read_manifest(hybrid_copy))  # re-signed by hand
    with pytest.raises(ModelError, match=r"ngram_sentiment_en\.safetensors: weight shapes"):
        Classifier.load(hybrid_copy, device="cpu")


def test_classify_uses_the_blend(hybrid_dir: Path, tiny_model_dir: Path) -> None:
    items = [ClassifyInput(id="en", text="good great love the city today", lang="en"),
             ClassifyInput(id="ar", text="سيء فظيع في المدينة", lang="ar"),
             ClassifyInput(id="zh", text="很好满意酒店房间今天", lang="zh"),
             ClassifyInput(id="fr", text="une phrase en français", lang="fr"),
             ClassifyInput(id="r", text="紧急扩散内部消息市民医院", lang="zh", time=1_400_000_000,
                           user={"verified": False, "followers": 10},
                           reposts=[{"date": "2014-05-14 01:00:00", "text": "谣言吧", "uid": "1"}], reposts_count=1)]
    hyb = Classifier.load(hybrid_dir, device="cpu")
    enc = Classifier.load(tiny_model_dir, device="cpu")
    ph = {p.id: p.classification for p in hyb.predict(items)}
    pe = {p.id: p.classification for p in enc.predict(items)}
    # the same encoder outputs, passed through the stored blend, give the hybrid's answer
    from nlp.normalize import normalize
    from nlp.rumor_features import features

    texts = [normalize(it.text) for it in items]
    p_enc = np.array([[pe[it.id].sentiment_scores[k] for k in ("negative", "neutral", "positive")] for it in items])
    want = hyb.hybrid.sentiment(texts, [it.lang for it in items], p_enc)
    for i, it in enumerate(items):
        got = [ph[it.id].sentiment_scores[k] for k in ("negative", "neutral", "positive")]
        assert np.allclose(got, want[i], atol=1e-4), it.id
        assert abs(sum(got) - 1) < 1e-4
    assert ph["en"].sentiment_scores != pe["en"].sentiment_scores  # blended
    assert ph["fr"].sentiment_scores == pe["fr"].sentiment_scores  # no n-gram model for fr: encoder alone
    # two-class zh: the neutral share stays the encoder's
    assert abs(ph["zh"].sentiment_scores["neutral"] - pe["zh"].sentiment_scores["neutral"]) < 1e-4
    r_enc = np.array([pe[it.id].rumor for it in items])
    feats = np.array([features(**it.context()) for it in items])
    want_r = hyb.hybrid.rumor(texts, [it.reposts for it in items], r_enc, feats)
    assert np.allclose([ph[it.id].rumor for it in items], want_r, atol=1e-4)
    assert all(c.model == "hyb@0.0.1" for c in ph.values())


def test_calibrated_scores_stay_in_range_and_keep_the_order(hybrid_dir: Path) -> None:
    h = Hybrid.load(hybrid_dir, set(read_manifest(hybrid_dir).files))
    rng = np.random.default_rng(0)
    n = 200
    texts = ["紧急扩散" * int(k % 5) + "市民" for k in range(n)]
    enc = rng.uniform(0, 1, n)
    enc[:3] = [0.0, 1.0, 0.5]  # extremes must not give NaN or leave [0, 1]
    feats = rng.uniform(0, 1, (n, 16))
    p = h.rumor(texts, [None] * n, enc, feats)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    # the calibration is a monotone map of the stacker's score: ordering is preserved
    from nlp.hybrid import rumor_inputs

    score = h.rumor_stack(rumor_inputs(enc, h.rumor_text.decision(texts), np.zeros(n), np.zeros(n), feats))[:, 0]
    order = np.argsort(score, kind="stable")
    assert (np.diff(p[order]) >= -1e-12).all()
    assert np.allclose(p, _sigmoid(score))
    # sentiment: probabilities in [0, 1] that sum to 1, whatever the encoder says
    p_enc = rng.dirichlet([1, 1, 1], n)
    p_enc[0] = [1.0, 0.0, 0.0]
    for lang in ("en", "ar", "zh"):
        s = h.sentiment(["good bad 很好 سيء"] * n, [lang] * n, p_enc)
        assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all() and np.allclose(s.sum(1), 1)


def test_card_reports_the_reference_beside_every_figure(hybrid_build: dict[str, Any]) -> None:
    d = hybrid_build["dir"]
    m = read_manifest(d)
    ev = m.evaluation
    ref = ev["reference"]
    assert set(ref["sentiment"]) == {"zh", "en", "ar", "ar_sarcasm"} and ref["rumor"]["auc"] is not None
    assert set(ev["rumor"]) == {"publish_time", "first_hour", "text_only"}
    readme = (d / "README.md").read_text(encoding="utf-8")
    for key in ("zh", "en", "ar", "ar_sarcasm"):
        assert f"| {key} |" in readme
    assert "reference" in readme and m.training["command"] in readme
    assert "reliability" in readme.lower() and "ECE" in readme


def test_ngram_model_round_trip(tmp_path: Path) -> None:
    texts = ["good day", "bad day", "good good", "bad bad", "fine day", "ok"]
    labels = ["positive", "negative", "positive", "negative", "neutral", "neutral"]
    m = fit_ngram("t", texts, labels, ["negative", "neutral", "positive"], [Block("char", 1, 3, 1 << 10),
                                                                           Block("word", 1, 1, 1 << 8)], C=1.0)
    m.save(tmp_path)
    back = NgramModel.load(tmp_path, "t")
    assert back.classes == m.classes and isinstance(back.featurizer, Featurizer)
    assert np.allclose(back.decision(texts), m.decision(texts), atol=1e-2)  # float16 storage
    assert back.decision(texts).argmax(1).tolist() == m.decision(texts).argmax(1).tolist()


def test_vocabulary_block_is_the_reference_feature_space(tmp_path: Path) -> None:
    """A `min_df` block stores its n-gram vocabulary and transforms exactly like issue 8's reference
    (TfidfVectorizer char 1-4, min_df 2, sublinear tf), and survives save/load."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["الجو جميل اليوم", "الجو سيء جدا", "يوم جميل", "سيء سيء", "لا بأس", "يوم عادي جدا", "جميل جدا"]
    labels = ["positive", "negative", "positive", "negative", "neutral", "neutral", "positive"]
    ref = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, lowercase=False).fit(texts)
    feat = Featurizer(blocks=[Block("char", 1, 4, 0, min_df=2)]).fit(texts)
    assert feat.blocks[0].vocabulary == sorted(ref.vocabulary_) and feat.n_features == len(ref.vocabulary_)
    order = [ref.vocabulary_[t] for t in feat.blocks[0].vocabulary]
    assert np.allclose(feat.transform(texts).toarray(), ref.transform(texts).toarray()[:, order], atol=1e-5)
    m = fit_ngram("v", texts, labels, ["negative", "neutral", "positive"],
                  [Block("char", 1, 4, 0, min_df=2), Block("word", 1, 2, 0, min_df=2)], C=1.0)
    m.save(tmp_path)
    back = NgramModel.load(tmp_path, "v")
    assert back.featurizer.blocks[0].vocabulary == m.featurizer.blocks[0].vocabulary
    assert np.allclose(back.decision(texts), m.decision(texts), atol=1e-2)
    cfg = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    cfg["blocks"][0]["vocabulary"] = cfg["blocks"][0]["vocabulary"][:-1]
    (tmp_path / "v.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelError, match=r"v\.json: block 0 declares \d+ features but stores \d+ vocabulary"):
        NgramModel.load(tmp_path, "v")


def test_three_class_blend_is_chosen_on_the_tuning_rows() -> None:
    """When the encoder carries no signal, the chosen blend is the n-gram alone (so the hybrid can at
    worst equal its n-gram component); when it carries the signal, the encoder gets weight."""
    from nlp.hybrid import sentiment_inputs
    from nlp.train_default import _choose_three_class

    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 3, n)
    signal = np.eye(3)[y] * 2.0 + rng.normal(0, 1.0, (n, 3))
    noise = rng.normal(0, 1.0, (n, 3))

    def probs(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    src = ["umsab_ar"] * 500 + ["arsarcasm"] * (n - 500)
    stack, acc = _choose_three_class(sentiment_inputs(probs(noise), signal, False), y, src, "ar")
    assert acc["chosen"] not in ("interpolation w_enc=0.4", "interpolation w_enc=0.5")  # noise gets little weight
    assert acc[acc["chosen"]] >= acc["ngram"] - 1e-9 and acc[acc["chosen"]] > acc["encoder"] + 0.2
    stack, acc = _choose_three_class(sentiment_inputs(probs(signal), noise, False), y, src, "en")
    assert acc["chosen"] != "interpolation w_enc=0.0" and acc[acc["chosen"]] > acc["ngram"] + 0.2
    X = sentiment_inputs(probs(signal), noise, False)
    assert (stack(X).argmax(1) == y).mean() > 0.6  # the returned stacker is the chosen one


def test_encoder_copied_out_of_a_hybrid_is_the_same_encoder(hybrid_dir: Path, tmp_path: Path) -> None:
    """`--encoder` may name a built hybrid directory: its encoder files are copied out with the
    encoder-alone figures, and load as a plain encoder giving the same encoder outputs."""
    from nlp.encoding import encode
    from nlp.train_default import encoder_from_hybrid

    enc = encoder_from_hybrid(hybrid_dir, tmp_path / "enc")
    m, src = read_manifest(enc), read_manifest(hybrid_dir)
    assert getattr(m, "hybrid", None) is None and m.evaluation == src.evaluation["encoder_alone"]
    assert sha256_file(enc / "model.safetensors") == sha256_file(hybrid_dir / "model.safetensors")
    plain, hyb = Classifier.load(enc, device="cpu"), Classifier.load(hybrid_dir, device="cpu")
    assert plain.hybrid is None and hyb.hybrid is not None
    texts = ["太好了", "bad day"]
    ids = encode(plain.tokenizer, texts, plain.max_length)
    assert np.allclose(plain._forward(ids, None)["sentiment"].numpy(), hyb._forward(ids, None)["sentiment"].numpy())
    with pytest.raises(SystemExit, match="without an encoder record"):
        encoder_from_hybrid(enc, tmp_path / "again")


def test_hybrid_directory_ships_no_training_text_and_measures_topics_with_a_built_corpus(
        hybrid_build: dict[str, Any]) -> None:
    """The shared data may not be redistributed: the directory holds no topic corpus, and the
    stand-in figure is measured with one built from the training texts at evaluation time."""
    from nlp.topic_corpus import FILES

    d = hybrid_build["dir"]
    assert not set(FILES) & set(read_manifest(d).files)
    assert not any((d / f).exists() for f in FILES)
    ts = hybrid_build["evaluation"]["topics_standin"]
    assert ts is not None and "topic corpus of" in ts["task"] and "hand-written keywords" in ts["task"]


def test_build_exports_the_served_onnx_graph_and_the_card_names_the_backend_it_measured(
        hybrid_copy: Path, shared_data: Path, tmp_path: Path) -> None:
    """`python -m nlp.train_default` exports the int8 graph before evaluating, so the card's
    figures are those of the graph the CPU serves. Rebuilding from a directory that had one, but
    without the export, must not carry its ONNX record over (the card would claim a graph that is
    not there)."""
    from nlp.onnx_export import export_onnx
    from nlp.train_default import build

    export_onnx(hybrid_copy)  # the encoder source now has an ONNX record, as the shipped default does
    assert (read_manifest(hybrid_copy).model_extra or {}).get("onnx")
    kw = dict(minutes=0, threads=1, seed=21, version="0.0.2", command="python -m nlp.train_default (test)",
              log=lambda s: None, bits=12)
    plain = tmp_path / "plain"
    ev = build(shared_data, plain, encoder=hybrid_copy, onnx=False, **kw)
    assert ev["backend"] == "torch" and not (plain / "model.onnx").exists()
    assert not (read_manifest(plain).model_extra or {}).get("onnx")
    assert "No ONNX graph in this directory" in (plain / "README.md").read_text(encoding="utf-8")

    served = tmp_path / "served"
    ev = build(shared_data, served, encoder=hybrid_copy, onnx=True, **kw)
    m = read_manifest(served)
    assert ev["backend"] == "onnx" and m.evaluation["backend"] == "onnx" and "model.onnx" in m.files
    card = (served / "README.md").read_text(encoding="utf-8")
    # the BLAS thread count changes the n-gram weights' rounding, so every build records it
    assert m.training["omp_num_threads"] and f"OMP_NUM_THREADS was {m.training['omp_num_threads']}" in card
    assert "## Serving: the int8 ONNX graph" in card and "measured through the **onnx** backend" in card
    assert Classifier.load(served, device="cpu").backend == "onnx"
