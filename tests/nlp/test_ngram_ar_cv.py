"""The Arabic n-gram cross-validation helpers (`nlp.ar_cv`): the figures in docs/decisions.md
("Arabic n-gram chosen by cross-validation") rest on these, so their arithmetic is checked on
small real inputs (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from nlp.ar_cv import fit_nb_lr, log_softmax, nb_ratio, score, summarise
from nlp.ngram import Block, Featurizer

TEXTS = ["جميل جدا رائع", "سيء جدا مزعج", "خبر عادي اليوم", "رائع وجميل", "مزعج وسيء للغاية", "اليوم خبر",
         "احب هذا رائع", "اكره هذا سيء", "الطقس اليوم", "جميل رائع احب", "سيء اكره مزعج", "عادي خبر الطقس"]
Y = np.array([2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])


def _X() -> sp.csr_matrix:
    feat = Featurizer(blocks=[Block("char", 1, 3, min_df=1), Block("word", 1, 1, min_df=1)]).fit(TEXTS)
    return feat.transform(TEXTS)


def test_nb_ratio_signs_follow_the_class() -> None:
    """A column present only in positive rows gets r > 0, only in the others r < 0, both alike r = 0."""
    X = sp.csr_matrix(np.array([[1.0, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float32))
    r = nb_ratio(X, np.array([True, True, False, False]))
    assert r[0] > 0 and r[1] < 0 and r[2] == pytest.approx(0.0, abs=1e-6)
    assert r[0] == pytest.approx(-r[1])


def test_nb_lr_folds_the_scaling_into_the_coefficients() -> None:
    """The served form X @ coef.T + b must equal the per-class binary LRs applied to the scaled
    features (that is what lets an NB-LR model be stored as a plain `NgramModel`)."""
    from sklearn.linear_model import LogisticRegression

    X = _X()
    coef, icpt = fit_nb_lr(X, Y, 3, C=1.0)
    folded = np.asarray(X @ coef.T) + icpt
    for c in range(3):
        r = nb_ratio(X, Y == c)
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(X.multiply(r[None, :]).tocsr(), Y == c)
        np.testing.assert_allclose(folded[:, c], lr.decision_function(X.multiply(r[None, :]).tocsr()), rtol=1e-4, atol=1e-4)
    assert (folded.argmax(1) == Y).mean() == 1.0  # separable toy data: the fitted model must get it right


def test_log_softmax_rows_are_log_probabilities() -> None:
    lp = log_softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0)
    assert np.isfinite(lp[1, 0])


def test_score_is_the_cards_arabic_metric() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 2])
    pred = np.array([0, 1, 2, 1, 1, 0, 0, 2])
    src = np.array(["umsab_ar"] * 3 + ["arsarcasm"] * 5)
    s = score(y, pred, src)
    assert s["umsab_macro_f1"] == pytest.approx(1.0)
    # ArSarcasm rows: y [0,1,2,0,2], pred [1,1,0,0,2]: negative tp 1, fp 1, fn 1 -> F1 0.5; positive tp 1, fn 1 -> 2/3
    assert s["arsarcasm_f1_pn"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert s["metric"] == pytest.approx((1.0 + (0.5 + 2 / 3) / 2) / 2)


def test_summarise_pairs_folds_with_the_baseline(tmp_path: Path) -> None:
    p = tmp_path / "cv.jsonl"
    recs = [{"fold": f, "config": c, "metric": m, "umsab_macro_f1": m, "arsarcasm_f1_pn": m}
            for c, ms in (("current c14+w12 C1", [0.60, 0.62, 0.64]), ("other", [0.61, 0.64, 0.67])) for f, m in enumerate(ms)]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    table = summarise([p])
    other = next(line for line in table.splitlines() if line.startswith("| other"))
    # differences 0.01, 0.02, 0.03: mean 0.02, SE = std(ddof=1) / sqrt(3) = 0.01 / sqrt(3)
    assert f"0.0200 ± {0.01 / np.sqrt(3):.4f}" in other
    assert "0.6400 ± 0.0173" in other  # mean 0.64, SE 0.03/sqrt(3)
    # a second repeat (same fold numbers) is pooled, not overwritten: 6 folds, per-repeat means 0.02 and -0.01
    q = tmp_path / "cv2.jsonl"
    q.write_text("".join(json.dumps({**r, "metric": r["metric"] - (0.03 if r["config"] == "other" else 0)}) + "\n"
                         for r in recs))
    other = next(line for line in summarise([p, q]).splitlines() if line.startswith("| other"))
    assert other.startswith("| other | 6 |") and "(repeats -0.0100..+0.0200)" in other


def test_extra_views_collapse_runs_and_stem_only_arabic_words() -> None:
    """`nlp.ar_cv_extra`'s text views: runs of 3+ become 2; Arabic word tokens are light-stemmed
    (article and suffix off, as the search index stems), other tokens kept, one token per word."""
    from index.analysis import arabic_stem
    from nlp.ar_cv_extra import collapse, stem_text

    assert collapse("جمييييل ههههه sooo 11") == "جمييل هه soo 11"
    assert collapse("abba") == "abba"
    out = stem_text("والكتاب رائعة! great")
    assert out.split() == [arabic_stem("والكتاب"), arabic_stem("رائعة"), "!", "great"]
    assert arabic_stem("والكتاب") != "والكتاب"  # the stemmer did something
