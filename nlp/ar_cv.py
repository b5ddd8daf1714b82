"""Cross-validated choice of the Arabic sentiment n-gram model (issue 8 follow-up).

Why this exists: the Arabic n-gram settings were first chosen on the tuning split alone (1,912
mixed UMSAB/ArSarcasm rows), where every option was within noise. This script compares a small
grid of candidates by stratified 5-fold cross-validation over *all* Arabic training rows (UMSAB ar
train + the ArSarcasm training part: the fit and tuning rows of `carve_tune` together), scored by
the card's Arabic tuning metric (mean of UMSAB macro-F1 and ArSarcasm F1-PN). The official dev
splits (`umsab ar` dev and the held-out ArSarcasm slice) are never read here.

Each fold fits the vocabularies and idf on its training part only, through the same `Featurizer`
the shipped model uses (so a candidate here is exactly what `fit_ngram` would train). Blocks are
L2-normalised one by one, so a config's matrix is the side-by-side of its blocks' matrices.

Run: `nice -n 10 python -m nlp.ar_cv --data ../shared/data --out /tmp/m8/cv.jsonl`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from nlp.data import load_shared
from nlp.train_default import SENT_LABELS, _norm, _tune_score

#: block name -> (analyser, ngram_min, ngram_max, min_df); all vocabulary blocks
BLOCKS = {"c14": ("char", 1, 4, 2), "w12": ("word", 1, 2, 2), "c15": ("char", 1, 5, 2), "c25": ("char", 2, 5, 2),
          "c14d1": ("char", 1, 4, 1), "w12d1": ("word", 1, 2, 1), "c14d3": ("char", 1, 4, 3), "w12d3": ("word", 1, 2, 3),
          "wb25": ("char_wb", 2, 5, 2), "w13": ("word", 1, 3, 2)}

#: candidates: name -> (blocks, C, kind); kind "lr" (multinomial LR, as fit_ngram), "lr-src" (the same
#: with sample weights giving UMSAB and ArSarcasm equal total weight, as the metric does) or "nb"
#: (NB-LR: per-class log-count-ratio scaling, one-vs-rest binary LRs, Wang & Manning 2012)
CONFIGS: dict[str, tuple[tuple[str, ...], float, str]] = {
    "current c14+w12 C1": (("c14", "w12"), 1.0, "lr"),
    "c14+w12 C0.5": (("c14", "w12"), 0.5, "lr"),
    "c14+w12 C2": (("c14", "w12"), 2.0, "lr"),
    "c14+w12 C4": (("c14", "w12"), 4.0, "lr"),
    "reference c14 C1": (("c14",), 1.0, "lr"),
    "c14 C2": (("c14",), 2.0, "lr"),
    "c15+w12 C1": (("c15", "w12"), 1.0, "lr"),
    "c15+w12 C2": (("c15", "w12"), 2.0, "lr"),
    "c25+w12 C1": (("c25", "w12"), 1.0, "lr"),
    "c25+w12 C2": (("c25", "w12"), 2.0, "lr"),
    "NB c14 C1": (("c14",), 1.0, "nb"),
    "NB c14 C4": (("c14",), 4.0, "nb"),
    "NB c14+w12 C0.5": (("c14", "w12"), 0.5, "nb"),
    "NB c14+w12 C1": (("c14", "w12"), 1.0, "nb"),
    "NB c14+w12 C2": (("c14", "w12"), 2.0, "nb"),
    "NB c14+w12 C4": (("c14", "w12"), 4.0, "nb"),
    "NB c15+w12 C1": (("c15", "w12"), 1.0, "nb"),
    "NB c25+w12 C1": (("c25", "w12"), 1.0, "nb"),
    "c14+w12 min_df 1 C1": (("c14d1", "w12d1"), 1.0, "lr"),
    "c14+w12 min_df 3 C1": (("c14d3", "w12d3"), 1.0, "lr"),
    "char_wb 2-5+w12 C1": (("wb25", "w12"), 1.0, "lr"),
    "c14+w13 C1": (("c14", "w13"), 1.0, "lr"),
    "c14+w12 source-balanced C1": (("c14", "w12"), 1.0, "lr-src"),
}
#: averages of two candidates' outputs: "geo" = softmax of the mean log-probabilities (one linear
#: model: servable as a single NgramModel), "arith" = mean of the probabilities
AVERAGES = {"avg-geo reference+current": ("reference c14 C1", "current c14+w12 C1", "geo"),
            "avg-arith reference+current": ("reference c14 C1", "current c14+w12 C1", "arith")}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nb_ratio(X: sp.csr_matrix, pos: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Wang & Manning's log-count ratio r = log((p/|p|_1) / (q/|q|_1)) on binarised features,
    p = alpha + sum of positive rows, q = alpha + sum of the other rows."""
    B = X.copy()
    B.data = np.ones_like(B.data)
    p = alpha + np.asarray(B[pos].sum(axis=0)).ravel()
    q = alpha + np.asarray(B[~pos].sum(axis=0)).ravel()
    return (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)


def fit_nb_lr(X: sp.csr_matrix, y: np.ndarray, k: int, C: float, max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest NB-LR. The scaling is linear in the features, so the served model folds it
    into the coefficients: coef[c] = w_c * r_c (returned that way; intercepts b_c)."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((k, X.shape[1]), dtype=np.float32)
    icpt = np.zeros(k, dtype=np.float32)
    for c in range(k):
        pos = y == c
        r = nb_ratio(X, pos)
        Xs = X.multiply(r[None, :]).tocsr()
        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter, solver="lbfgs")
        lr.fit(Xs, pos.astype(int))
        coef[c] = lr.coef_[0] * r
        icpt[c] = lr.intercept_[0]
    return coef, icpt


def fit_lr(X: sp.csr_matrix, y: np.ndarray, C: float, max_iter: int = 2000,
           sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter, solver="lbfgs").fit(X, y, sample_weight=sample_weight)
    return lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)


def score(y: np.ndarray, pred: np.ndarray, src: np.ndarray) -> dict[str, float]:
    """The card's Arabic tuning metric and its two parts."""
    from sklearn.metrics import f1_score

    u = src == "umsab_ar"
    s = src == "arsarcasm"
    um = float(f1_score(y[u], pred[u], average="macro"))
    pn = float(f1_score(y[s], pred[s], labels=[0, 2], average="macro"))
    # the metric itself is train_default's, so the CV ranks by what the build chooses by
    return {"metric": _tune_score(y, pred, list(src), "ar"), "umsab_macro_f1": um, "arsarcasm_f1_pn": pn}


def run(data_root: Path, out: Path, folds: int, seed: int, configs: list[str], only_folds: list[int] | None, log) -> None:  # type: ignore[no-untyped-def]
    from sklearn.model_selection import StratifiedKFold

    from nlp.ngram import Block, Featurizer

    data = load_shared(data_root)
    rows = data.train["ar"]  # fit + tuning rows of carve_tune: the same set, another order
    texts = _norm(rows)
    y = np.array([SENT_LABELS.index(e.label) for e in rows])
    src = np.array([e.source for e in rows])
    strata = np.array([f"{s}:{lab}" for s, lab in zip(src, y)])
    log(f"{len(rows)} Arabic training rows: " + str({s: int((src == s).sum()) for s in sorted(set(src))}))
    need = sorted({b for c in configs if c in CONFIGS for b in CONFIGS[c][0]}
                  | {b for a in configs if a in AVERAGES for c in AVERAGES[a][:2] for b in CONFIGS[c][0]})
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for f, (tr, va) in enumerate(skf.split(texts, strata)):
        if only_folds is not None and f not in only_folds:
            continue
        t = time.time()
        blocks = [Block(*BLOCKS[b][:3], min_df=BLOCKS[b][3]) for b in need]
        feat = Featurizer(blocks=blocks).fit([texts[i] for i in tr])
        Wtr = dict(zip(need, feat.weighted([texts[i] for i in tr])))
        Wva = dict(zip(need, feat.weighted([texts[i] for i in va])))
        log(f"fold {f}: features {time.time() - t:.0f}s " + str({b: Wtr[b].shape[1] for b in need}))
        logp: dict[str, np.ndarray] = {}
        for name in configs:
            t = time.time()
            if name in AVERAGES:
                a, b, how = AVERAGES[name]
                if how == "geo":
                    lp = log_softmax((logp[a] + logp[b]) / 2)
                else:
                    lp = np.log((np.exp(logp[a]) + np.exp(logp[b])) / 2)
            else:
                bl, C, kind = CONFIGS[name]
                Xtr = sp.hstack([Wtr[b] for b in bl], format="csr")
                Xva = sp.hstack([Wva[b] for b in bl], format="csr")
                if kind == "nb":
                    coef, icpt = fit_nb_lr(Xtr, y[tr], 3, C)
                elif kind == "lr-src":
                    s_tr = src[tr]
                    sw = np.array([len(s_tr) / (2.0 * (s_tr == v).sum()) for v in s_tr])
                    coef, icpt = fit_lr(Xtr, y[tr], C, sample_weight=sw)
                else:
                    coef, icpt = fit_lr(Xtr, y[tr], C)
                lp = log_softmax(np.asarray(Xva @ coef.T) + icpt)
            logp[name] = lp
            rec = {"fold": f, "config": name, **score(y[va], lp.argmax(1), src[va]), "seconds": round(time.time() - t, 1)}
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(f"  {name}: " + ", ".join(f"{k} {v:.4f}" if k != "seconds" else f"{v}s" for k, v in rec.items()
                                          if k not in ("fold", "config")))


def read_folds(paths: list[Path]) -> dict[str, dict[tuple[int, int], dict[str, Any]]]:
    """Per-fold records of one or more CV runs (one file per seed): config -> (file index, fold) ->
    record, so repeats with the same fold numbers are pooled, not overwritten."""
    by: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    for i, path in enumerate(paths):
        for line in Path(path).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                by.setdefault(r["config"], {})[(i, r["fold"])] = r
    return by


def summarise(paths: list[Path], baseline: str = "current c14+w12 C1") -> str:
    """Markdown table: mean and fold-to-fold standard error of each figure, and the paired
    difference from the baseline (mean +- standard error of the per-fold differences). Several
    files (repeats of the CV with other seeds) are pooled fold by fold; the last column then also
    gives the spread of the per-repeat mean differences (min..max), since folds of different
    repeats overlap and their pooled standard error is optimistic."""
    by = read_folds(paths)
    base = by.get(baseline, {})
    L = ["| candidate | folds | metric (mean ± SE) | UMSAB macro-F1 | ArSarcasm F1-PN | Δ metric vs current (paired ± SE) | Δ ArSarcasm F1-PN (paired ± SE) |",
         "|---|---|---|---|---|---|---|"]

    def ms(v: list[float]) -> str:
        a = np.array(v)
        se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
        return f"{a.mean():.4f} ± {se:.4f}"

    for name, fr in by.items():
        fs = sorted(fr)
        common = [f for f in fs if f in base]
        d = [fr[f]["metric"] - base[f]["metric"] for f in common]
        dpn = [fr[f]["arsarcasm_f1_pn"] - base[f]["arsarcasm_f1_pn"] for f in common]
        reps = sorted({f[0] for f in common})
        per_rep = [np.mean([fr[f]["metric"] - base[f]["metric"] for f in common if f[0] == i]) for i in reps]
        spread = f" (repeats {min(per_rep):+.4f}..{max(per_rep):+.4f})" if len(reps) > 1 else ""
        L.append(f"| {name} | {len(fs)} | {ms([fr[f]['metric'] for f in fs])} | {ms([fr[f]['umsab_macro_f1'] for f in fs])} "
                 f"| {ms([fr[f]['arsarcasm_f1_pn'] for f in fs])} | {ms(d) + spread if name != baseline else '—'} "
                 f"| {ms(dpn) if name != baseline else '—'} |")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlp.ar_cv", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("/tmp/ar_cv.jsonl"), help="per-fold records are appended here")
    p.add_argument("--also", type=Path, nargs="*", default=[],
                   help="with --summary: more record files (other seeds) pooled into the table")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[*CONFIGS, *AVERAGES])
    p.add_argument("--only-folds", type=int, nargs="*", default=None)
    p.add_argument("--summary", action="store_true", help="only print the table of an existing --out file")
    a = p.parse_args(argv)
    if not a.summary:
        run(a.data, a.out, a.folds, a.seed, a.configs, a.only_folds, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(summarise([a.out, *a.also]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
