"""The default model: `python -m nlp.train_default --data ../shared/data --out models/default`.

What it builds (issue 8): the multi-task encoder of `nlp.train` *plus* character/word n-gram
linear models, blended by stackers (`nlp.hybrid`). Steps, in order:

1. read `../shared/data` (`nlp.data`: dedup, held-out ArSarcasm slice) and carve a stratified,
   seeded **tuning split** off each training set (`carve_tune`: zh 10 %, en/ar 15 %, rumour 20 %);
2. train the encoder (`nlp.train.train`) on the training rows *without* the tuning split, for a
   bounded wall time (or reuse one trained that way: `--encoder DIR`);
3. fit the n-gram models on the same rows and predict the tuning split: sentiment per language
   (char + word n-grams, TF-IDF, logistic regression; `SENT_CHAR`), rumour from the post's
   text and from the first hour of reposts' texts;
4. fit the stackers on the tuning split (the encoder's and n-grams' out-of-sample outputs, plus the
   rumour context features at both operating points): the blend *and* the calibration;
5. refit the n-gram models on all training rows (tuning split included), save the directory
   (encoder files + `ngram_*.json/.safetensors` + `blend.json` + manifest with every sha256);
6. reload the directory through `Classifier.load` and measure it on the official dev splits, beside
   the issue's n-gram reference (char 1-4-gram TF-IDF + LR), trained here on the same rows and
   measured on the same dev splits; write the card (README.md).

The official dev splits are never used for fitting or for choosing anything in this script.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nlp.data import Example, SharedData, load_shared
from nlp.modeldir import replace_dir
from nlp.rumor_features import FEATURES, cut_to_window, features

TUNE_FRACTION = {"zh": 0.1, "en": 0.15, "ar": 0.15, "rumor": 0.2}
FIRST_HOUR = 3600.0
SENT_LABELS = ["negative", "neutral", "positive"]
TWO_CLASS = ["zh"]


def carve_tune(data: SharedData, seed: int = 21) -> tuple[SharedData, dict[str, list[Example]]]:
    """Split a stratified, seeded *tuning* slice off each training set. The encoder and the n-gram
    models are fitted without it; blend weights and calibration are fitted on it; the official dev
    splits are only ever used for the reported figures."""
    rng = random.Random(seed)
    fit: dict[str, list[Example]] = {}
    tune: dict[str, list[Example]] = {}
    for key, rows in data.train.items():
        frac = TUNE_FRACTION.get(key, 0.1)
        by_label: dict[object, list[int]] = {}
        for i, e in enumerate(rows):
            by_label.setdefault(e.label, []).append(i)
        held: set[int] = set()
        for lab in sorted(by_label, key=str):
            idx = by_label[lab][:]
            rng.shuffle(idx)
            held.update(idx[: round(len(idx) * frac)])
        fit[key] = [e for i, e in enumerate(rows) if i not in held]
        tune[key] = [e for i, e in enumerate(rows) if i in held]
    return replace(data, train=fit), tune


# -- n-gram settings (chosen on the tuning split, see the card) -------------------------------
#: log2 of the hashed char-n-gram space (word n-grams get half of it); tests use a tiny one
HASH_BITS = 18


#: per-language departures from the default sentiment blocks (char 1-5 in 2^bits + word 1-2 in
#: 2^(bits-1)), chosen on the tuning split (figures in models/default/README.md): Chinese gains from
#: a 4x larger char space of 1-3-grams without the word block; Arabic from a stored vocabulary
#: (n-grams in >= 2 training texts, the reference's feature space) of char 1-4 + word 1-2-grams.
#: English keeps the default: stored vocabularies did not beat it under cross-validation (`nlp.en_cv`)
SENT_CHAR: dict[str, dict[str, Any]] = {"zh": {"extra_bits": 2, "ngram_max": 3, "word": False},
                                        "ar": {"ngram_max": 4, "min_df": 2}}


def sentiment_blocks(bits: int = HASH_BITS, lang: str | None = None):  # type: ignore[no-untyped-def]
    from nlp.ngram import Block

    o = SENT_CHAR.get(lang or "", {})
    md = o.get("min_df", 0)
    char = Block("char", 1, o.get("ngram_max", 5), 1 << (bits + o.get("extra_bits", 0)), min_df=md)
    return [char, Block("word", 1, 2, 1 << (bits - 1), min_df=md)] if o.get("word", True) else [char]


def _block_text(b) -> str:  # type: ignore[no-untyped-def]
    space = f"vocabulary, min_df {b.min_df}" if b.min_df else f"2^{b.n_features.bit_length() - 1} hashed"
    return f"{b.analyzer} {b.ngram_min}-{b.ngram_max} ({space})"


def sentiment_blocks_text(bits: int = HASH_BITS) -> dict[str, str]:
    return {lang: " + ".join(_block_text(b) for b in sentiment_blocks(bits, lang)) + ", sublinear TF-IDF"
            for lang in ("zh", "en", "ar")}


def rumor_blocks(bits: int = HASH_BITS):  # type: ignore[no-untyped-def]
    from nlp.ngram import Block

    return [Block("char", 1, 4, 1 << bits)]


SENT_C = {"zh": 8.0, "en": 2.0, "ar": 1.0}
#: lbfgs iterations per language (the Arabic vocabulary model needs more to converge)
SENT_ITER = {"zh": 300, "en": 300, "ar": 2000}
#: candidate fixed blends for three-class languages: softmax(w log p_encoder + (1 - w) log p_ngram),
#: compared on the tuning split with the fitted stacker's 5-fold cross-validated figure
INTERP_W = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
RUMOR_C = 2.0
STACK_C = 1.0


def _norm(rows: list[Example]) -> list[str]:
    from nlp.normalize import normalize

    return [normalize(e.text) for e in rows]


def _windows(rows: list[Example]) -> list[tuple[Example, dict[str, Any]]]:
    """Each rumour row at both operating points of the contract."""
    return [(e, cut_to_window(e.row, w)) for w in (None, FIRST_HOUR) for e in rows]


def _encoder_outputs(enc_dir: Path, rows: list[Example], ctx: list[dict[str, Any]] | None) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's (sentiment probabilities, rumour probability) for rows, through the real loader."""
    from nlp.classifier import Classifier
    from nlp.encoding import encode
    from nlp.normalize import normalize

    clf = Classifier.load(enc_dir, device="cpu")
    texts = [normalize(e.text) for e in rows]
    ids = encode(clf.tokenizer, texts, clf.max_length)
    feats = [features(**c) for c in ctx] if ctx is not None else None
    out = clf._forward(ids, feats)
    return out["sentiment"].double().numpy(), out["rumor"].double().numpy()


def _fit_ngrams(rows: dict[str, list[Example]], texts: dict[str, list[str]], log, bits: int = HASH_BITS) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from nlp.hybrid import repost_text
    from nlp.ngram import fit_ngram

    models = {}
    for lang in ("zh", "en", "ar"):
        t = time.time()
        classes = ["negative", "positive"] if lang in TWO_CLASS else SENT_LABELS
        models[lang] = fit_ngram(f"ngram_sentiment_{lang}", texts[lang], [e.label for e in rows[lang]], classes,
                                 sentiment_blocks(bits, lang), C=SENT_C[lang], max_iter=SENT_ITER[lang])
        log(f"  n-gram sentiment {lang}: {len(rows[lang])} rows, {time.time() - t:.0f}s")
    ylab = ["1" if int(e.label) else "0" for e in rows["rumor"]]
    models["rumor_text"] = fit_ngram("ngram_rumor_text", texts["rumor"], ylab, ["0", "1"], rumor_blocks(bits), C=RUMOR_C)
    rep = [(repost_text(cut_to_window(e.row, FIRST_HOUR)["reposts"]), y) for e, y in zip(rows["rumor"], ylab)]
    rep = [(t, y) for t, y in rep if t]
    models["rumor_reposts"] = fit_ngram("ngram_rumor_reposts", [t for t, _ in rep], [y for _, y in rep], ["0", "1"],
                                        rumor_blocks(bits), C=RUMOR_C)
    log(f"  n-gram rumour: text {len(ylab)} rows, first-hour reposts {len(rep)} rows")
    return models


def _tune_score(y: np.ndarray, pred: np.ndarray, src: list[str], lang: str) -> float:
    """The tuning figure a three-class blend is chosen by. Arabic serves two dev figures (UMSAB
    macro-F1, ArSarcasm F1-PN) from one model, and the pooled tuning rows are 87 % ArSarcasm, so
    the two sources' headline metrics are averaged; other languages: macro-F1."""
    from sklearn.metrics import f1_score

    if lang != "ar":
        return float(f1_score(y, pred, average="macro"))
    s = np.array(src)
    parts = []
    for source, labels in (("umsab_ar", None), ("arsarcasm", [0, 2])):
        m = s == source
        if m.any():
            parts.append(float(f1_score(y[m], pred[m], labels=labels, average="macro")))
    return float(np.mean(parts)) if parts else float(f1_score(y, pred, average="macro"))


def _choose_three_class(X: np.ndarray, y: np.ndarray, src: list[str], lang: str) -> tuple[Any, dict[str, Any]]:
    """Pick the three-class blend on the tuning split: the fitted logistic stacker (judged by its
    5-fold cross-validated predictions, since it is fitted on these rows) or a fixed interpolation
    softmax(w log p_enc + (1 - w) log p_ngram) for w in INTERP_W (nothing fitted, so judged
    directly). Why: on Arabic the encoder is weak and the 6-input stacker's CV figure fell below
    its own n-gram input (0.659 vs 0.668 pooled macro-F1): a fitted stacker can only lose there,
    while w = 0 (the n-gram alone) is always a candidate. An interpolation is a `Linear` stacker
    too (coef [w I, (1 - w) I]), so serving is unchanged."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from nlp.hybrid import Linear

    lr = LogisticRegression(C=STACK_C, max_iter=1000, class_weight="balanced")
    cv = cross_val_predict(lr, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
    lr.fit(X, y)
    cands: list[tuple[float, str, Linear]] = [
        (_tune_score(y, cv.argmax(1), src, lang), "stacker (5-fold CV)",
         Linear(lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)))]
    eye = np.eye(3)
    for w in INTERP_W:
        lin = Linear(np.concatenate([w * eye, (1 - w) * eye], axis=1), np.zeros(3))
        cands.append((_tune_score(y, lin(X).argmax(1), src, lang), f"interpolation w_enc={w}", lin))
    best = max(cands, key=lambda c: c[0])  # ties: the first (the stacker, then the smaller w)
    acc: dict[str, Any] = {"encoder": _tune_score(y, X[:, :3].argmax(1), src, lang),
                           "ngram": _tune_score(y, X[:, 3:].argmax(1), src, lang)}
    acc.update({name: score for score, name, _ in cands})
    acc["chosen"] = best[1]
    return best[2], acc


def _fit_stackers(tune: dict[str, list[Example]], tune_texts: dict[str, list[str]], ngrams: dict[str, Any],
                  enc_dir: Path, log) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from nlp.hybrid import Linear, repost_text, rumor_inputs, sentiment_inputs
    from nlp.metrics import expected_calibration_error

    blend: dict[str, Any] = {"sentiment": {}, "tuning": {}}
    for lang in ("zh", "en", "ar"):
        rows = tune[lang]
        p_enc, _ = _encoder_outputs(enc_dir, rows, None)
        z = ngrams[lang].decision(tune_texts[lang])
        two = lang in TWO_CLASS
        X = sentiment_inputs(p_enc, z, two)
        if two:
            y = np.array([int(e.label == "positive") for e in rows])
            lr = LogisticRegression(C=STACK_C, max_iter=1000).fit(X, y)
            stack = Linear(lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64))
            acc = {"encoder": float(((X[:, 0] > 0) == y).mean()), "ngram": float(((X[:, 1] > 0) == y).mean()),
                   "blend (in-sample)": float((lr.predict(X) == y).mean())}
        else:
            y = np.array([SENT_LABELS.index(e.label) for e in rows])
            src = [e.source for e in rows]
            stack, acc = _choose_three_class(X, y, src, lang)
        metric = "accuracy" if two else ("mean of UMSAB macro_f1 and ArSarcasm f1_pn" if lang == "ar" else "macro_f1")
        blend["sentiment"][lang] = {"ngram": ngrams[lang].name, "stacker": stack.to_json()}
        blend["tuning"][f"sentiment_{lang}"] = {"n": len(rows), "metric": metric,
                                                 **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in acc.items()}}
        log(f"  stacker {lang}: tuning {metric} " + ", ".join(f"{k} {v}" for k, v in acc.items()))
    # rumour: both operating points
    pairs = _windows(tune["rumor"])
    rows = [e for e, _ in pairs]
    ctx = [c for _, c in pairs]
    _, r_enc = _encoder_outputs(enc_dir, rows, ctx)
    norm_map = dict(zip((id(e) for e in tune["rumor"]), tune_texts["rumor"]))
    z_text = ngrams["rumor_text"].decision([norm_map[id(e)] for e in rows])
    rep = [repost_text(c["reposts"]) for c in ctx]
    has = np.array([1.0 if t else 0.0 for t in rep])
    z_rep = np.zeros(len(rep))
    sel = [i for i, t in enumerate(rep) if t]
    z_rep[sel] = ngrams["rumor_reposts"].decision([rep[i] for i in sel])
    feats = np.array([features(**c) for c in ctx], dtype=np.float64)
    X = rumor_inputs(r_enc, z_text, z_rep, has, feats)
    y = np.array([int(e.label) for e in rows])
    lr = LogisticRegression(C=STACK_C, max_iter=2000).fit(X, y)
    # honest tuning-split estimate of the stacker: 5-fold cross-validated probabilities
    from sklearn.model_selection import GroupKFold, cross_val_predict

    groups = np.array([i % len(tune["rumor"]) for i in range(len(rows))])  # both windows of a post in one fold
    cv = cross_val_predict(LogisticRegression(C=STACK_C, max_iter=2000), X, y, groups=groups,
                           cv=GroupKFold(n_splits=5), method="predict_proba")[:, 1]
    n = len(tune["rumor"])
    blend["rumor"] = {"text_ngram": ngrams["rumor_text"].name, "repost_ngram": ngrams["rumor_reposts"].name,
                      "features": list(FEATURES),
                      "inputs": ["encoder_logit", "text_ngram_logit", "repost_ngram_logit*has_reposts", "has_reposts", *FEATURES],
                      "stacker": Linear(lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)).to_json()}
    tun = {}
    for name, sl in (("publish_time", slice(0, n)), ("first_hour", slice(n, 2 * n))):
        enc_l = X[sl, 0]
        tun[name] = {"n": n, "auc_encoder": round(float(roc_auc_score(y[sl], enc_l)), 4),
                     "auc_text_ngram": round(float(roc_auc_score(y[sl], X[sl, 1])), 4),
                     "auc_blend_cv": round(float(roc_auc_score(y[sl], cv[sl])), 4),
                     "ece_blend_cv": expected_calibration_error(y[sl], cv[sl])[0]}
        log(f"  rumour stacker {name}: tuning {tun[name]}")
    blend["tuning"]["rumor"] = tun
    return blend


# -- the n-gram reference ---------------------------------------------------------------
def reference_model():  # type: ignore[no-untyped-def]
    """The issue's n-gram reference, unfitted: char 1-4-gram TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, lowercase=False),
                         LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))


def reference(rows_by_key: dict[str, list[Example]], train_texts: dict[str, list[str]], dev: dict[str, list[Example]],
              log) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Plain char 1-4-gram TF-IDF + logistic regression per source, trained on all training rows
    (the same rows the default model uses) and measured on the same dev splits."""
    from nlp.metrics import binary_report, classification_report

    out: dict[str, Any] = {"method": "TfidfVectorizer(analyzer='char', ngram_range=(1, 4), sublinear_tf=True, min_df=2) "
                                     "+ LogisticRegression(C=1, class_weight='balanced'), per source, on the normalised "
                                     "training texts (tuning split included); text only",
                           "sentiment": {}, "rumor": None}

    model = reference_model
    for key in ("zh", "en", "ar"):
        t = time.time()
        assert len(train_texts[key]) == len(rows_by_key[key])
        m = model().fit(train_texts[key], [e.label for e in rows_by_key[key]])
        for dkey in ([key, "ar_sarcasm"] if key == "ar" else [key]):
            rows = dev[dkey]
            pred = list(m.predict(_norm(rows)))
            labels = ["negative", "positive"] if key in TWO_CLASS else SENT_LABELS
            rep = classification_report([e.label for e in rows], pred, labels)
            out["sentiment"][dkey] = {k: rep[k] for k in ("n", "accuracy", "macro_f1", "f1_pn", "f1") if k in rep}
            log(f"  reference {dkey}: accuracy {rep['accuracy']} macro-F1 {rep['macro_f1']} F1-PN {rep.get('f1_pn')} "
                f"({time.time() - t:.0f}s)")
    m = model().fit(train_texts["rumor"], [int(e.label) for e in rows_by_key["rumor"]])
    rows = dev["rumor"]
    p = m.predict_proba(_norm(rows))[:, 1]
    rep = binary_report([int(e.label) for e in rows], p.tolist())
    out["rumor"] = {k: rep[k] for k in ("n", "auc", "accuracy", "ece")}
    log(f"  reference rumour (text only, same at both operating points): {out['rumor']}")
    return out


# -- the card ------------------------------------------------------------------------------------
ANCHORS = {
    "zh": "n-gram 93.5 % acc; BERT ≈ 95 %",
    "en": "n-gram 0.65; XLM-R 0.685; XLM-T 0.706",
    "ar": "n-gram 0.63; XLM-R 0.643; XLM-T 0.669",
    "ar_sarcasm": "n-gram 0.64 F1-PN; best 0.748 F1-PN",
    "rumor": "n-gram text-only AUC 0.975; Bi-GCN ≈ 96 % acc (with propagation)",
}
REPRODUCE = "python -m nlp.train_default --data ../shared/data --out models/default --minutes 11 --threads 1 --version {version}"
HEADLINE = {"zh": "accuracy", "en": "macro_f1", "ar": "macro_f1", "ar_sarcasm": "f1_pn"}


def _standin_keywords() -> dict[str, list[str]]:
    from nlp.evaluate import standin_keywords

    return standin_keywords()


def _losses(ev: dict[str, Any]) -> list[str]:
    """The dev rows where this model does not beat the n-gram reference (the issue's bar)."""
    ref = ev["reference"]
    out = [f"{k} ({HEADLINE[k]} {ev['sentiment'][k][HEADLINE[k]]} vs {ref['sentiment'][k][HEADLINE[k]]})"
           for k in HEADLINE if ev["sentiment"][k][HEADLINE[k]] <= ref["sentiment"][k][HEADLINE[k]]]
    out += [f"rumour {p} (AUC {ev['rumor'][p]['auc']} vs {ref['rumor']['auc']})" for p in ("publish_time", "first_hour")
            if ev["rumor"][p]["auc"] <= ref["rumor"]["auc"]]
    return out


def card(manifest: Any) -> str:
    ev = manifest.evaluation
    ref = ev["reference"]
    enc = ev.get("encoder_alone") or {}
    t = manifest.training
    tun = manifest.hybrid.get("tuning", {})
    L = [f"# {manifest.name} {manifest.version}", "", manifest.description, "",
         "## What it is",
         (f"- **Hybrid**: the multi-task encoder of `nlp.train` ({t['encoder']['parameters'] / 1e6:.2f}M parameters, "
         f"{t['encoder']['layers']} layers, hidden {t['encoder']['hidden']}, float16 weights, WordPiece tokenizer trained on "
         "the shared texts) blended with character/word n-gram logistic regressions (stored n-gram vocabularies for "
         + ", ".join(k for k, v in SENT_CHAR.items() if v.get("min_df")) + " sentiment; hashed columns otherwise) by linear stackers (`nlp/hybrid.py`, `blend.json`). n-gram weights are safetensors + JSON configs (no pickle), every file "
         "covered by the manifest's sha256."),
         f"- Sentiment: per language with an n-gram model ({', '.join(sorted(manifest.hybrid['sentiment_languages']))}): "
         "a linear stacker over the encoder's log-probabilities and the n-gram's log-probabilities. Three-class languages: "
         "the blend is chosen on the tuning split between a fitted logistic stacker (judged by 5-fold cross-validation) "
         "and fixed interpolations softmax(w·log p_encoder + (1-w)·log p_ngram), w in 0-0.5; chosen: " + "; ".join(
             f"{k.removeprefix('sentiment_')} {v['chosen']}" for k, v in tun.items() if isinstance(v, dict) and "chosen" in v)
         + ". Chinese reviews are two-class: "
         "the stacker decides negative vs positive only and the neutral share is the encoder's own (learned from the "
         "tweets), so the reviews neither push nor starve the neutral class. Other languages: the encoder alone.",
         ("- Rumour: logistic stacker over the encoder's rumour logit, the n-gram logit of the post's text, the n-gram logit "
         "of the reposts' texts seen so far (none at publish time), and the 16 context features of "
         "`nlp/rumor_features.py` (author, media, repost velocity, reply stance). Only what the classify contract passes "
         "is used: never final repost or comment counts. Being a logistic model fitted on held-out data, it is Platt-"
         "calibrated; reliability curves below."),
         ("- Topics: keyword rules + example prototypes, expanded from a deployment's own unlabelled posts when config "
         "names a topic corpus (`nlp.topic_corpus`, built by `yuqing topic-corpus`): at load the taxonomy's keywords and "
         "examples pseudo-label the corpus and a naive Bayes model is fitted on the confident half plus the examples "
         "(`nlp/topics.py`). The directory ships no corpus (the training data may not be redistributed); the stand-in "
         "figure below builds one from the unlabelled training reviews at evaluation time. Encoder-similarity weight "
         f"{manifest.heads.topics.encoder_weight}."),
         f"- `rumor` means: {manifest.heads.rumor.meaning}", "",
         "## Dev figures (official dev splits, measured on the saved directory via `Classifier.load`)", "",
         ("Every row: this model, the encoder alone (same encoder, before blending), and the issue's n-gram reference "
         "(char 1-4-gram TF-IDF + LR) **trained and measured by the same script on the same rows and dev split**, then "
         "the published anchors (quoted, held-out *test* splits, not comparable row for row)."), "",
         "| source | metric | n | **default** | encoder alone | n-gram reference (ours, dev) | Δ vs reference | published anchors (test) |",
         "|---|---|---|---|---|---|---|---|"]
    for key, metric in HEADLINE.items():
        r = ev["sentiment"][key]
        rr = ref["sentiment"][key]
        e = (enc.get("sentiment") or {}).get(key, {})
        L.append(f"| {key} | {metric} | {r['n']} | **{r[metric]}** | {e.get(metric, '')} | {rr[metric]} | "
                 f"{r[metric] - rr[metric]:+.4f} | {ANCHORS[key]} |")
    L += ["", "Secondary sentiment figures (default / reference): " + "; ".join(
        f"{k}: accuracy {ev['sentiment'][k]['accuracy']} / {ref['sentiment'][k]['accuracy']}, macro-F1 "
        f"{ev['sentiment'][k]['macro_f1']} / {ref['sentiment'][k]['macro_f1']}" for k in HEADLINE) + ".", "",
          (f"Chinese reviews: neutral share of the three-way answer {ev['sentiment']['zh'].get('three_way_neutral_share')} "
          "(zh is scored negative vs positive; the neutral class comes from the encoder)."), "",
          "| rumour (CED dev) | n | **AUC default** | AUC encoder alone | AUC n-gram reference (text only) | Δ AUC | accuracy@0.5 | ECE default | ECE reference |",
          "|---|---|---|---|---|---|---|---|---|"]
    rr = ref["rumor"]
    for name, r in ev["rumor"].items():
        e = (enc.get("rumor") or {}).get(name, {})
        L.append(f"| {name} | {r['n']} | **{r['auc']}** | {e.get('auc', '')} | {rr['auc']} | {r['auc'] - rr['auc']:+.4f} | "
                 f"{r['accuracy']} | {r['ece']} | {rr['ece']} |")
    L += ["", (f"Anchors: {ANCHORS['rumor']} (test). `text_only` is a caller that passes no context at all; the reference "
              "uses the text only, so its figure is the same at every operating point."), "",
          "Reliability (rumour, dev; mean predicted → observed rumour share, n per bin):", ""]
    for name in ("publish_time", "first_hour"):
        curve = ev["rumor"][name]["reliability"]
        L.append(f"- {name} (ECE {ev['rumor'][name]['ece']}): " + ", ".join(
            f"{c['mean_p']:.2f}→{c['observed']:.2f} (n={c['n']})" for c in curve))
    L += ["", ("**Read `rumor` with care:** it is calibrated to CED's base rate (about half the posts are rumours); a "
              "real stream has far fewer, so it overstates the risk of an ordinary post: rank by it, do not read it "
              "as a rate.")]
    ts = ev.get("topics_standin")
    if ts:
        L += ["", f"Topics stand-in ({ts['task']}; `nlp.evaluate.eval_topics` on this directory, which builds the "
                  "topic corpus at evaluation time from the unlabelled training reviews, as a deployment builds one from "
                  f"its own posts): macro-F1 **{ts['macro_f1']}**, accuracy {ts['accuracy']} on {ts['n']} dev rows (issue 8 "
                  "reference: char-n-gram LR on the same 20 examples 0.67; target 0.80). The keywords are hand-written "
                  "from the category names (nlp/standin_topics.json: "
                  + "; ".join(f"{c}: {'、'.join(k)}" for c, k in _standin_keywords().items()) + "). Choices made on "
                  "these dev rows (so this figure is optimistic by a small amount): the corpus size (expansion alone: "
                  "20k posts 0.803, 25k 0.811; full builds: 22k 0.7991, 25k 0.8039 and 0.8013, so the sample alone moves "
                  "it by ~0.005), the keyword weight at classify time "
                  "(noisy-OR weight 1.0: 0.783; 0.1: 0.804) and the visibility floor of a keyword hit (0.3: 0.796; "
                  "0.21: 0.801). Independent check on labelled training rows instead "
                  "(same 20 examples, 3,170 categorised training reviews not in that 25k corpus, labels used only to "
                  "score): keyword weight 1.0 / 0.3 / 0.1 / 0 with floor 0.21: 0.796 / 0.805 / 0.802 / 0.799; without "
                  "keywords 0.789; prototypes + keywords without corpus 0.702; prototypes alone 0.679. Without keywords "
                  "the expansion alone reached 0.793 on dev (54k posts, counts); keywords added to the prototypes 0.707; "
                  "multinomial naive Bayes beat a logistic regression (0.765) and complement NB (0.790) on the same "
                  "pseudo-labels; keeping the confident 35 % / 50 % / 70 %: 0.793 / 0.815 / 0.806 (54k posts); iterating centroids "
                  "instead drifted (0.72 -> 0.66).",
              "", ("Tried for topics and not shipped (exploratory, measured on the same stand-in dev rows, same 20 "
                  "examples; no category labels fitted): a latent semantic space learnt from unlabelled training texts "
                  "(sublinear char-n-gram TF-IDF + truncated SVD), prototypes / a logistic regression fitted on the 20 "
                  "examples per topic: 0.63-0.65 (20k char 1-2-grams, 128 dims, all zh + Weibo texts), 0.66-0.68 "
                  "(256 dims, 20k char 1-2 or 30k char 1-3-grams), 0.67-0.69 (300 dims, review texts only; 20k x 300 float16 = 12 MB, over "
                  "budget); adding the topic name as an example 0.65; kNN 0.55-0.58; self-training of that regression "
                  "on the unlabelled training reviews (shipping their vectors) 0.70; corpus-wide IDF for the example "
                  "prototypes 0.64-0.68. A char-1-2-gram regression fitted on all 40,748 labelled shopping training rows (not a "
                  "legitimate mechanism, an upper bound) reaches 0.90: most of the gap is reviews that never name "
                  "their product (\"物流很快，质量好\"), which 20 examples cannot place.")]
    L += ["", ("Tuning split (carved from the training files; the stackers were fitted here, so the blend's own figure "
              "there is in-sample for sentiment and 5-fold cross-validated for rumour):"), "",
          "```", json.dumps(tun, ensure_ascii=False, indent=1), "```",
          *_serving(manifest),
          "", "## Training",
          (f"- Tuning split: {t['tune_fraction']} of each training set (stratified, seed {t['seed']}); rows "
          f"fit/tune: {t['rows_fit']} / {t['rows_tune']}."),
          (f"- Encoder: `nlp.train` on the fit rows only, {t['encoder']['steps']} steps in {t['encoder']['train_seconds']} s "
          f"on {t['encoder']['threads']} CPU thread(s) (wall-time bounded). Its own dev figures are the 'encoder alone' column."),
          (f"- n-gram models: sentiment {t['ngram']['sentiment']}; rumour {t['ngram']['rumor']}; fitted on the fit rows "
          "for the stackers, then refitted on all training rows for the shipped files."),
          f"- Time: {t['seconds']['total']} s in all on this machine's shared 2-core CPU ({json.dumps(t['seconds'])}).",
          f"- Code revision: {t.get('code_revision')}; data: `../shared/data`, files and sha256 in manifest.json.",
          (f"- Reproducibility: OMP_NUM_THREADS was {t.get('omp_num_threads', 'not recorded')} for this build. "
           "The n-gram weights change in their last bits with the BLAS thread count (measured) and may with "
           "the machine; a rebuild "
           "gets the same vocabularies, blend choices and encoder, and dev figures within about 0.003 (measured: "
           "docs/decisions.md, \"Default model: what a rebuild reproduces\")."),
          "- Reproduce (from the project root; the encoder stage is wall-time bounded, so its step count varies):", "",
          f"      {REPRODUCE.format(version=manifest.version)}", "",
          *([(f"- This directory was built by `{t['command']}`: the same script, reusing an encoder trained by its "
             "encoder stage (`nlp.train.train` on the fit rows of the same carve, `--minutes 11 --threads 1`, "
             f"{t['encoder']['steps']} steps; the encoder files of the 1.0.0 build, copied out of an earlier "
             "default directory with its encoder-alone figures), so only the n-gram, blend, calibration and topic "
             "corpus stages were rerun. The same build from the repository: `git show`/`git archive` the 1.0.0 "
             "`models/default` (commit 1f840f1) into a directory D, then `python -m nlp.train_default --data "
             f"../shared/data --out models/default --encoder D --threads 1 --version {manifest.version}` (`--encoder` "
             "accepts a hybrid directory and copies its encoder out, as was done here).")]
            if "--encoder" in t["command"] else [f"- Command of this build: `{t['command']}`"]), "",
          "## Honest notes",
          "- **Issue 8's bar (beat the n-gram reference on every dev split and on rumour at both operating points): "
          + ("met.**" if not _losses(ev) else "NOT met.** Behind the reference on: " + ", ".join(_losses(ev)) + "."),
          ("- Dev figures only; the project's held-out test splits decide. en/ar dev sets have 324 rows each: a "
          "difference of 0.01-0.02 macro-F1 is within noise."),
          ("- Nothing for sentiment or rumour was chosen on the dev splits: n-gram settings, the stackers and the "
          "calibration use the tuning split carved from the training files. The topic mechanism's few settings were "
          "compared on the stand-in's dev rows and checked on labelled training rows (see the topics paragraph)."),
          ("- The encoder is small and trained from scratch on CPU; most of the accuracy comes from the n-gram side. "
          "The shipped en and rumour n-gram models hash into 2^18 char (+2^17 word) columns (zh: 2^20 char 1-3-gram "
          "columns, no word block) to keep the weights under 25 MB; the reference uses a full char 1-4-gram vocabulary "
          "(min_df 2), as the Arabic model does (plus word 1-2-grams; the vocabulary lives in its JSON config). For "
          "English, stored vocabularies (char 1-4 / 1-5 / char_wb 2-5 + word 1-2, C 1-4) did not beat the hashed model "
          "under 5-fold cross-validation over its training rows repeated with 4 seeds (`nlp.en_cv`, docs/decisions.md). "
          "Tested on "
          "the tuning split (n-gram alone, fit rows -> tuning rows): Chinese gained from a different char space (accuracy "
          "0.9117 with the default blocks, 0.9145 with 2^20 char + word, 0.9176-0.9228 with 2^20 char 1-4 at C 4-16, "
          "0.9209-0.9230 with 2^20 char 1-3 at C 4-16, 0.9233 with 2^19 char 1-3 at C 8: the gain comes from the shorter "
          "char n-grams without the word block, not from the hash size)."),
          ("- Arabic (issue 8 follow-up). Why the previous hybrid (1.0.0) was below its own n-gram component: the 6-input "
          "logistic stacker, judged by 5-fold cross-validation on the tuning split, scored below the n-gram alone (pooled "
          "macro-F1 0.6592 vs 0.6683; ArSarcasm F1-PN 0.6363 vs 0.6454): the encoder is weak on Arabic (0.6042) and adds "
          "no information the stacker can use reliably, so refitting class biases on 1,912 mixed UMSAB/ArSarcasm rows "
          "only adds variance (its in-sample figure, 0.6678, hid this). Hashing was not the cause either (0.6683 hashed "
          "char 1-5 + word vs 0.6684 for the reference's own pipeline fitted on the same rows). Tuning-split figures of "
          "the Arabic n-gram alone (pooled macro-F1 / UMSAB macro-F1 / ArSarcasm F1-PN): hashed char 1-5 + word 1-2 at C 2 "
          "0.6683 / 0.6028 / 0.6454; stored vocabulary (min_df 2) char 1-4 at C 0.5 / 1 / 2: 0.6669 / 0.6702 / 0.6701 "
          "pooled; char 1-5: 0.6703 / 0.6263 / 0.6480; **char 1-4 + word 1-2 at C 1: 0.6747 / 0.6344 / 0.6497** "
          "(shipped); mean of the hashed model and the reference pipeline 0.6739 / 0.6211 / 0.6520; stacker with "
          "per-source inputs 0.6707 / 0.5992 / 0.6486 (and the source is unknown when serving); class-bias offsets "
          "chosen on one half of the tuning split lowered the other half (0.6285 vs 0.6377 and 0.6323 vs 0.646, mean "
          "of UMSAB macro-F1 and ArSarcasm F1-PN). The blend is now chosen on the tuning split "
          "(see 'What it is'); for Arabic the n-gram alone (w = 0) won, so Arabic sentiment is that n-gram model. The "
          "Arabic-letter folding of `nlp.normalize` already applies to training and serving; UMSAB and ArSarcasm are "
          "trained jointly (one Arabic model: which source a post resembles is unknown when serving)."),
          ("- `text_only` (a caller passing no context at all) lies outside the rumour stacker's training inputs "
          "(it always saw the author): its probabilities are poorly calibrated (see its ECE); pass the context."),
          "- Sentiment for languages other than zh/en/ar is the encoder alone (no n-gram model, unvalidated).",
          "",
          "## Licence", f"- Code: {manifest.licence.get('code')}. Weights: {manifest.licence.get('weights')}.",
          f"- Training data: {'; '.join(manifest.licence.get('training_data', []))}.", ""]
    return "\n".join(L)


# -- main ----------------------------------------------------------------------------------------
ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _serving(manifest: Any) -> list[str]:
    """The card's serving section: which graph the CPU runs and which one the figures measure."""
    onnx = (getattr(manifest, "model_extra", None) or {}).get("onnx")
    backend = manifest.evaluation.get("backend", "torch")
    if not onnx:
        return ["", "## Serving", "", "No ONNX graph in this directory: the fp32 weights serve, and the figures above "
                "were measured through them."]
    return ["", "## Serving: the int8 ONNX graph", "",
            (f"`{onnx['file']}` is the encoder exported by `nlp.onnx_export` (as `yuqing models export-onnx` does; "
             f"{onnx['quantization']}, opset {onnx['opset']}) during this build and listed in the manifest with its "
             "checksum. With onnxruntime (a main dependency) the CPU serves it; `--backend torch` (or "
             "`Classifier.load(..., backend=\"torch\")`) forces the fp32 weights. The dev figures above were measured "
             f"through the **{backend}** backend (on 1.1.0 the two paths agreed to within 0.0001 AUC and 0.0002 ECE, "
             "sentiment identical; `tests/nlp/test_default_model.py` checks the agreement). Speed: "
             "`python -m bench.classify --model models/default` (issue 8 requires >= 100 posts/s on 2 cores, <= 1 GB "
             "resident); each build's figures are in docs/decisions.md.")]


def encoder_from_hybrid(src: Path, dst: Path) -> Path:
    """The encoder directory (as `nlp.train` writes it) inside a built hybrid directory: its encoder
    files, and a manifest whose training record and figures are the hybrid's encoder-alone ones.
    Why: `--encoder` can then reuse the encoder of a previous build (e.g. the shipped one, from git)
    and rerun only the n-gram, blend and calibration stages."""
    from nlp.manifest import read_manifest, write_manifest

    m = read_manifest(src)
    e = (m.training or {}).get("encoder") or {}
    if not e or "encoder_alone" not in (m.evaluation or {}):
        raise SystemExit(f"{src}: a hybrid directory without an encoder record; pass the encoder's own directory")
    dst.mkdir(parents=True)
    for name in ENCODER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    training = {"parameters": e["parameters"], "config": {"layers": e["layers"], "hidden": e["hidden"]},
                "steps": e["steps"], "train_seconds": e["train_seconds"], "threads": e["threads"],
                "command": e["command"], "rows": e["rows"]}
    write_manifest(dst, m.model_copy(deep=True, update={"training": training, "evaluation": m.evaluation["encoder_alone"],
                                                        "hybrid": None}))
    return dst


def build(data_root: Path, out: Path, encoder: Path | None, minutes: float, threads: int, seed: int,
          version: str, command: str, log, bits: int = HASH_BITS, encoder_minutes_note: str = "",  # type: ignore[no-untyped-def]
          onnx: bool = False) -> dict[str, Any]:
    """Build the directory `out` (steps in the module docstring). With `onnx` the encoder is also
    exported to an int8 `model.onnx` before the evaluation, so the card's figures are those of the
    graph the CPU serves by default (the command line exports unless `--no-onnx`)."""
    import torch

    from nlp.evaluate import evaluate
    from nlp.manifest import read_manifest, write_manifest
    from nlp.train import TrainConfig, _git_revision, train

    t0 = time.time()
    secs: dict[str, float] = {}
    torch.set_num_threads(threads)
    data = load_shared(data_root)
    fit, tune = carve_tune(data, seed)
    log("rows fit: " + str({k: len(v) for k, v in fit.train.items()}) + " tune: " + str({k: len(v) for k, v in tune.items()}))
    out = Path(out)
    work = out.with_name(out.name + ".build")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if encoder is None:
        encoder = work / "encoder"
        t = time.time()
        train(TrainConfig(data=data_root, out=encoder, name=f"{out.name}-encoder", version=version, bootstrap=False,
                          minutes=minutes, threads=threads, topics_eval=False,
                          command=f"{command} (encoder stage)"), data=fit, log=log)
        secs["encoder"] = round(time.time() - t, 1)
    if getattr(read_manifest(encoder), "hybrid", None):
        encoder = encoder_from_hybrid(encoder, work / "encoder")
    enc_manifest = read_manifest(encoder)
    enc_eval = enc_manifest.evaluation or {}

    t = time.time()
    fit_texts = {k: _norm(v) for k, v in fit.train.items()}
    tune_texts = {k: _norm(v) for k, v in tune.items()}
    secs["normalise"] = round(time.time() - t, 1)
    t = time.time()
    log("n-gram models on the fit rows:")
    ngrams = _fit_ngrams(fit.train, fit_texts, log, bits)
    secs["ngram_fit"] = round(time.time() - t, 1)
    t = time.time()
    log("stackers on the tuning split:")
    blend = _fit_stackers(tune, tune_texts, ngrams, encoder, log)
    secs["stackers"] = round(time.time() - t, 1)

    t = time.time()
    log("n-gram models refitted on all training rows:")
    all_texts = {k: fit_texts[k] + tune_texts[k] for k in fit_texts}
    all_rows = {k: fit.train[k] + tune[k] for k in fit.train}
    final = _fit_ngrams(all_rows, all_texts, log, bits)
    secs["ngram_refit"] = round(time.time() - t, 1)

    # assemble the directory: encoder files + n-gram files + blend.json + manifest
    stage = work / "model"
    stage.mkdir()
    for name in ENCODER_FILES:
        if (encoder / name).exists():
            shutil.copy2(encoder / name, stage / name)
    for m in final.values():
        m.save(stage)
    from nlp.hybrid import BLEND
    from nlp.hybrid import FORMAT as BLEND_FORMAT

    tuning = blend.pop("tuning")
    (stage / BLEND).write_text(json.dumps({"format": BLEND_FORMAT, "two_class_languages": TWO_CLASS, **blend},
                                          ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    et = enc_manifest.training
    m = enc_manifest.model_copy(deep=True, update={
        "name": out.name, "version": version, "bootstrap": False, "evaluation": {},
        "description": ("Default model: a small multilingual encoder blended with character/word n-gram linear models "
                        "(sentiment zh/en/ar, rumour with author and first-hour propagation context), stackers and "
                        "calibration fitted on a tuning split carved from the training data."),
    })
    if m.model_extra:  # an encoder copied out of an earlier build carries its ONNX record; this directory has none yet
        m.model_extra.pop("onnx", None)
    m.hybrid = {"blend": BLEND, "sentiment_languages": sorted(blend["sentiment"]), "tuning": tuning,
                "method": "logistic stackers over encoder + n-gram outputs (nlp.hybrid)"}
    m.training = {
        "trainer": "nlp.train_default (encoder: nlp.train; n-grams and stackers: scikit-learn LogisticRegression)",
        "command": command, "seed": seed, "tune_fraction": TUNE_FRACTION,
        "rows_fit": {k: len(v) for k, v in fit.train.items()}, "rows_tune": {k: len(v) for k, v in tune.items()},
        "encoder": {"parameters": et.get("parameters"), "layers": et["config"]["layers"], "hidden": et["config"]["hidden"],
                    "steps": et.get("steps"), "train_seconds": et.get("train_seconds"), "threads": et.get("threads"),
                    "command": et.get("command"), "rows": et.get("rows")},
        "ngram": {"sentiment": {"blocks": sentiment_blocks_text(bits),
                                "C": SENT_C, "class_weight": "balanced"},
                  "rumor": {"blocks": f"char 1-4 (2^{bits} hashed), sublinear TF-IDF", "C": RUMOR_C, "class_weight": "balanced",
                            "models": ["post text", "first-hour repost texts"]}},
        "data_root": "../shared/data", "data_files_sha256": data.files,
        "code_revision": _git_revision(), "torch": torch.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "sklearn": __import__("sklearn").__version__,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_manifest(stage, m)
    replace_dir(stage, out)
    log(f"saved {out}")
    if onnx:
        from nlp.onnx_export import export_onnx

        t = time.time()
        export_onnx(out)
        secs["onnx_export"] = round(time.time() - t, 1)
        log(f"exported {out / 'model.onnx'}")

    t = time.time()
    ev = evaluate(out, data, log=log)
    secs["evaluate"] = round(time.time() - t, 1)
    t = time.time()
    log("n-gram reference:")
    ref = reference(all_rows, all_texts, data.dev, log)
    secs["reference"] = round(time.time() - t, 1)
    ev["reference"] = ref
    ev["encoder_alone"] = {"sentiment": {k: {kk: v.get(kk) for kk in ("n", "accuracy", "macro_f1", "f1_pn")}
                                         for k, v in (enc_eval.get("sentiment") or {}).items()},
                           "rumor": {k: {kk: v.get(kk) for kk in ("n", "auc", "accuracy", "ece")}
                                     for k, v in (enc_eval.get("rumor") or {}).items()}}
    secs["total"] = round(time.time() - t0, 1)
    m = read_manifest(out)
    m.training["seconds"] = secs
    m = m.model_copy(update={"evaluation": json.loads(json.dumps(ev))})
    (out / "README.md").write_text(card(m), encoding="utf-8")
    write_manifest(out, m)
    shutil.rmtree(work, ignore_errors=True)
    log(f"done in {secs['total']} s")
    return ev


def refresh_reference(data_root: Path, out: Path, seed: int, log) -> None:  # type: ignore[no-untyped-def]
    """Recompute only the n-gram reference of an existing directory and rewrite its card (the
    model's files and figures are untouched; the manifest's checksums are re-recorded)."""
    from nlp.manifest import read_manifest, write_manifest

    data = load_shared(data_root)
    fit, tune = carve_tune(data, seed)
    all_rows = {k: fit.train[k] + tune[k] for k in fit.train}
    t = time.time()
    ref = reference(all_rows, {k: _norm(v) for k, v in all_rows.items()}, data.dev, log)
    m = read_manifest(out)
    ev = dict(m.evaluation)
    ev["reference"] = json.loads(json.dumps(ref))
    m.training["seconds"]["reference"] = round(time.time() - t, 1)
    m = m.model_copy(update={"evaluation": ev})
    (out / "README.md").write_text(card(m), encoding="utf-8")
    write_manifest(out, m)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlp.train_default", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("models/default"))
    p.add_argument("--encoder", type=Path, default=None,
                   help="reuse an encoder directory trained by nlp.train on the fit rows of the same carve, or a "
                        "hybrid directory built by this script (its encoder is copied out; default: train one now)")
    p.add_argument("--minutes", type=float, default=11.0, help="wall-time budget of the encoder stage")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=21, help="seed of the tuning carve")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--no-onnx", action="store_true",
                   help="do not export the int8 ONNX graph (then the card's figures are those of the fp32 weights)")
    p.add_argument("--refresh-reference", action="store_true",
                   help="only recompute the n-gram reference of the existing --out directory and rewrite its card")
    a = p.parse_args(argv)
    if a.refresh_reference:
        refresh_reference(a.data, a.out, a.seed, log=lambda s: print(s, file=sys.stderr, flush=True))
        return 0
    command = " ".join(["python -m nlp.train_default", *(argv if argv is not None else sys.argv[1:])])
    build(a.data, a.out, a.encoder, a.minutes, a.threads, a.seed, a.version, command,
          log=lambda s: print(s, file=sys.stderr, flush=True), onnx=not a.no_onnx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
