"""Reporting only (nothing is chosen on it): the shipped Arabic n-gram against issue 8's n-gram
reference on the dev rows, with a paired bootstrap of the difference.

Why it exists: the card's one row below the reference (ArSarcasm F1-PN, 1,226 dev rows) needs
its sampling error beside it; `nlp.ar_cv` chose the model without reading dev, this script only
says how far apart the two are on dev and how sure that is. The reference is `train_default.reference_model`,
refitted as for the card (on the `carve_tune` fit + tuning rows); the shipped side is
the Arabic n-gram that `models/default` serves for Arabic (blend weight w_enc = 0).

Run: `python -m nlp.ar_devgap [--model models/default] [--data ../shared/data]`
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nlp.data import load_shared
from nlp.ngram import NgramModel
from nlp.train_default import SENT_LABELS, _norm, carve_tune, reference_model


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import f1_score

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--resamples", type=int, default=2000)
    a = ap.parse_args(argv)
    data = load_shared(a.data)
    fit, tune = carve_tune(data, 21)
    rows = fit.train["ar"] + tune["ar"]
    ref = reference_model().fit(_norm(fit.train["ar"]) + _norm(tune["ar"]), [e.label for e in rows])
    shipped = NgramModel.load(a.model, "ngram_sentiment_ar")
    rng = np.random.default_rng(0)
    for key, labels, name in (("ar", None, "macro-F1"), ("ar_sarcasm", [0, 2], "F1-PN")):
        dev = data.dev[key]
        texts = _norm(dev)
        y = np.array([SENT_LABELS.index(e.label) for e in dev])
        pa = shipped.decision(texts).argmax(1)
        pr = np.array([SENT_LABELS.index(label) for label in ref.predict(texts)])

        def f1(p: np.ndarray, idx: np.ndarray, y: np.ndarray = y, labels: list[int] | None = labels) -> float:
            return float(f1_score(y[idx], p[idx], labels=labels, average="macro"))

        idx = np.arange(len(y))
        d = np.array([f1(pa, b) - f1(pr, b) for b in (rng.integers(0, len(y), len(y)) for _ in range(a.resamples))])
        print(f"{key} {name} n={len(y)}: shipped n-gram {f1(pa, idx):.4f}, reference {f1(pr, idx):.4f}, "
              f"diff {f1(pa, idx) - f1(pr, idx):+.4f}; paired bootstrap SE {d.std():.4f}, 95% interval "
              f"[{np.percentile(d, 2.5):+.4f}, {np.percentile(d, 97.5):+.4f}], shipped >= reference in "
              f"{(d >= 0).mean():.3f} of resamples; agreement {(pa == pr).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
