"""Cross-validated choice of the English sentiment n-gram model (issue 8 follow-up).

Why this exists: the English n-gram of the default model hashes its char 1-5 and word 1-2-grams
(2^18 + 2^17 columns, C 2), a setting carried over from the first build, while the Arabic model
moved to a stored vocabulary. Outcome (docs/decisions.md): no candidate beat the hashed model. This script compares the two feature spaces (and a few C values
and n-gram ranges) by stratified (source x label) 5-fold cross-validation over *all* English
training rows (UMSAB en train + TweetEval: the fit and tuning rows of `carve_tune` together). The
official dev split (UMSAB en dev) is never read here.

Two figures per fold: `metric` is what `train_default` chooses English blends by (macro-F1 over
the pooled rows, 86 % TweetEval), `umsab_macro_f1` the same on the UMSAB rows alone, the source of
the dev headline. Vocabularies and idf are fitted per fold through the shipped `Featurizer`.

Run: `OMP_NUM_THREADS=1 python -m nlp.en_cv --seed 0 --out /tmp/en_cv/s0.jsonl` (about 8 min on one
core), table: `python -m nlp.en_cv --summary --out /tmp/en_cv/s0.jsonl --also /tmp/en_cv/s1.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from nlp.ar_cv import fit_lr, read_folds
from nlp.data import load_shared
from nlp.train_default import SENT_LABELS, _norm

#: block name -> (analyser, ngram_min, ngram_max, hashed columns (0: vocabulary), min_df)
BLOCKS = {"h15": ("char", 1, 5, 1 << 18, 0), "hw12": ("word", 1, 2, 1 << 17, 0),
          "c15": ("char", 1, 5, 0, 2), "c14": ("char", 1, 4, 0, 2), "w12": ("word", 1, 2, 0, 2),
          "wb25": ("char_wb", 2, 5, 0, 2), "c15d3": ("char", 1, 5, 0, 3), "w12d1": ("word", 1, 2, 0, 1)}
BASELINE = "hashed c15+w12 C2 (1.1.0)"
CONFIGS: dict[str, tuple[tuple[str, ...], float]] = {
    BASELINE: (("h15", "hw12"), 2.0), "hashed c15+w12 C1": (("h15", "hw12"), 1.0),
    "vocab c15+w12 C1": (("c15", "w12"), 1.0), "vocab c15+w12 C2": (("c15", "w12"), 2.0),
    "vocab c15+w12 C4": (("c15", "w12"), 4.0), "vocab c14+w12 C1": (("c14", "w12"), 1.0),
    "vocab c14+w12 C2": (("c14", "w12"), 2.0), "vocab char_wb 2-5+w12 C2": (("wb25", "w12"), 2.0),
    "vocab c15 min_df 3 + w12 min_df 1 C2": (("c15d3", "w12d1"), 2.0),
}


def _block(name: str):  # type: ignore[no-untyped-def]
    from nlp.ngram import Block

    a, lo, hi, cols, md = BLOCKS[name]
    return Block(a, lo, hi, cols, min_df=md) if cols else Block(a, lo, hi, min_df=md)


def run(data_root: Path, out: Path, seed: int, log) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from nlp.ngram import Featurizer

    rows = load_shared(data_root).train["en"]
    texts = _norm(rows)
    y = np.array([SENT_LABELS.index(e.label) for e in rows])
    src = np.array([e.source for e in rows])
    strata = np.array([f"{s}:{lab}" for s, lab in zip(src, y)])
    log(f"{len(rows)} English training rows: " + str({s: int((src == s).sum()) for s in sorted(set(src))}))
    need = sorted({b for bl, _ in CONFIGS.values() for b in bl})
    for f, (tr, va) in enumerate(StratifiedKFold(5, shuffle=True, random_state=seed).split(texts, strata)):
        t = time.time()
        feat = Featurizer(blocks=[_block(b) for b in need]).fit([texts[i] for i in tr])
        Wtr = dict(zip(need, feat.weighted([texts[i] for i in tr])))
        Wva = dict(zip(need, feat.weighted([texts[i] for i in va])))
        log(f"fold {f}: features {time.time() - t:.0f}s " + str({b: Wtr[b].shape[1] for b in need}))
        u = src[va] == "umsab_en"
        for name, (bl, C) in CONFIGS.items():
            coef, icpt = fit_lr(sp.hstack([Wtr[b] for b in bl], format="csr"), y[tr], C)
            pred = (np.asarray(sp.hstack([Wva[b] for b in bl], format="csr") @ coef.T) + icpt).argmax(1)
            rec = {"fold": f, "config": name, "metric": float(f1_score(y[va], pred, average="macro")),
                   "umsab_macro_f1": float(f1_score(y[va][u], pred[u], average="macro"))}
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(f"  {name}: metric {rec['metric']:.4f}, UMSAB macro-F1 {rec['umsab_macro_f1']:.4f}")


def summarise(paths: list[Path]) -> str:
    """Markdown table: each figure's mean ± fold-to-fold standard error, and its paired difference
    from the 1.1.0 setting (mean ± standard error of the per-fold differences), folds of all files
    (repeats with other seeds) pooled."""
    by = read_folds(paths)
    base = by.get(BASELINE, {})

    def ms(v: list[float]) -> str:
        a = np.array(v)
        return f"{a.mean():+.4f} ± {a.std(ddof=1) / np.sqrt(len(a)):.4f}" if len(a) > 1 else f"{a.mean():+.4f}"

    L = ["| candidate | folds | pooled macro-F1 | UMSAB macro-F1 | Δ pooled (paired) | Δ UMSAB (paired) |",
         "|---|---|---|---|---|---|"]
    for name, fr in by.items():
        common = [f for f in sorted(fr) if f in base]
        d = {k: [fr[f][k] - base[f][k] for f in common] for k in ("metric", "umsab_macro_f1")}
        L.append(f"| {name} | {len(fr)} | {np.mean([r['metric'] for r in fr.values()]):.4f} | "
                 f"{np.mean([r['umsab_macro_f1'] for r in fr.values()]):.4f} | "
                 + (" — | — |" if name == BASELINE else f"{ms(d['metric'])} | {ms(d['umsab_macro_f1'])} |"))
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlp.en_cv", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("/tmp/en_cv.jsonl"), help="per-fold records are appended here")
    p.add_argument("--also", type=Path, nargs="*", default=[], help="with --summary: more record files (other seeds)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary", action="store_true", help="only print the table of existing record files")
    a = p.parse_args(argv)
    if not a.summary:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        run(a.data, a.out, a.seed, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(summarise([a.out, *a.also]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
