"""Extra cross-validated candidates for the Arabic sentiment n-gram model (follow-up to `nlp.ar_cv`).

Same machinery as `nlp.ar_cv` (stratified source x label folds over `load_shared(...).train["ar"]`,
vocabularies and idf fitted per fold through the shipped `Featurizer`, multinomial LR with
class_weight balanced, the card's Arabic tuning metric), on new candidates not in
docs/decisions.md "Arabic n-gram chosen by cross-validation":

1. elongation collapse: after `normalize` (which already caps any run at three), any character
   repeated 3+ times becomes two ("جمييييل" -> "جمييل", "ههههه" -> "هه"), for every block, on
   the training and validation texts alike;
2. an extra word 1-2 block (min_df 2) over Arabic light-stemmed words: each word token (the
   word block's own token pattern) that contains an Arabic letter goes through the search index's
   Lucene ArabicStemmer port (`index.analysis.arabic_stem`: one prefix of ال وال بال كال فال لل و,
   then suffixes ها ان ات ون ين يه ية ه ة ي); no stop-word removal (negations matter here);
3. both together.

The official dev splits are never read here.

Run: `OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m nlp.ar_cv_extra --seed 0 --out /tmp/arx/s0.jsonl`
"""

from __future__ import annotations

import argparse
import re
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from nlp.ar_cv import fit_lr, log_softmax, score, summarise
from nlp.data import load_shared
from nlp.train_default import SENT_LABELS, _norm

_ELONG = re.compile(r"(.)\1{2,}", re.S)
_WORD = re.compile(r"(?u)\b\w+\b|[^\w\s]")  # `Block._kw`'s word token pattern
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")


def collapse(text: str) -> str:
    """Any character repeated 3+ times -> 2."""
    return _ELONG.sub(r"\1\1", text)


def stem_text(text: str) -> str:
    """The word tokens, Arabic ones light-stemmed, joined by spaces (the word block re-tokenises
    this to the same tokens: a stem is a substring of a \\w+ token, so still one \\w+ token)."""
    from index.analysis import arabic_stem

    return " ".join(arabic_stem(w) if _ARABIC.search(w) else w for w in _WORD.findall(text))


#: text views: name -> function of the normalised text
VIEWS = {"plain": lambda t: t, "coll": collapse, "stem": stem_text, "coll-stem": lambda t: stem_text(collapse(t))}

#: block name -> (view, analyser, ngram_min, ngram_max, min_df)
BLOCKS = {"c14": ("plain", "char", 1, 4, 2), "w12": ("plain", "word", 1, 2, 2),
          "c14x": ("coll", "char", 1, 4, 2), "w12x": ("coll", "word", 1, 2, 2),
          "sw12": ("stem", "word", 1, 2, 2), "sw12x": ("coll-stem", "word", 1, 2, 2)}

#: candidates: name -> (blocks, C); all multinomial LR, class_weight balanced (as fit_ngram)
CONFIGS: dict[str, tuple[tuple[str, ...], float]] = {
    "current c14+w12 C1": (("c14", "w12"), 1.0),
    "collapse c14+w12 C1": (("c14x", "w12x"), 1.0),
    "c14+w12+stem-w12 C1": (("c14", "w12", "sw12"), 1.0),
    "collapse c14+w12+stem-w12 C1": (("c14x", "w12x", "sw12x"), 1.0),
    "c14+stem-w12 C1 (stem replaces w12)": (("c14", "sw12"), 1.0),
}


def run(data_root: Path, out: Path, folds: int, seed: int, configs: list[str], log) -> None:  # type: ignore[no-untyped-def]
    from sklearn.model_selection import StratifiedKFold

    from nlp.ngram import Block, Featurizer

    data = load_shared(data_root)
    rows = data.train["ar"]
    texts = _norm(rows)
    y = np.array([SENT_LABELS.index(e.label) for e in rows])
    src = np.array([e.source for e in rows])
    strata = np.array([f"{s}:{lab}" for s, lab in zip(src, y)])
    log(f"{len(rows)} Arabic training rows: " + str({s: int((src == s).sum()) for s in sorted(set(src))}))
    need = sorted({b for c in configs for b in CONFIGS[c][0]})
    views_needed = sorted({BLOCKS[b][0] for b in need})
    vt = {v: [VIEWS[v](t) for t in texts] for v in views_needed}
    for v in views_needed:
        if v != "plain":
            log(f"view {v}: {sum(a != b for a, b in zip(texts, vt[v]))} of {len(texts)} texts changed")
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for f, (tr, va) in enumerate(skf.split(texts, strata)):
        t = time.time()
        Wtr: dict[str, sp.csr_matrix] = {}
        Wva: dict[str, sp.csr_matrix] = {}
        for v in views_needed:
            names = [b for b in need if BLOCKS[b][0] == v]
            blocks = [Block(*BLOCKS[b][1:4], min_df=BLOCKS[b][4]) for b in names]
            feat = Featurizer(blocks=blocks).fit([vt[v][i] for i in tr])
            Wtr.update(zip(names, feat.weighted([vt[v][i] for i in tr])))
            Wva.update(zip(names, feat.weighted([vt[v][i] for i in va])))
        log(f"fold {f}: features {time.time() - t:.0f}s " + str({b: Wtr[b].shape[1] for b in need}))
        for name in configs:
            t = time.time()
            bl, C = CONFIGS[name]
            Xtr = sp.hstack([Wtr[b] for b in bl], format="csr")
            Xva = sp.hstack([Wva[b] for b in bl], format="csr")
            coef, icpt = fit_lr(Xtr, y[tr], C)
            lp = log_softmax(np.asarray(Xva @ coef.T) + icpt)
            rec = {"fold": f, "config": name, **score(y[va], lp.argmax(1), src[va]), "seconds": round(time.time() - t, 1)}
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(f"  {name}: " + ", ".join(f"{k} {v:.4f}" if k != "seconds" else f"{v}s" for k, v in rec.items()
                                          if k not in ("fold", "config")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlp.ar_cv_extra", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("/tmp/ar_cv_extra.jsonl"), help="per-fold records are appended here")
    p.add_argument("--also", type=Path, nargs="*", default=[],
                   help="with --summary: more record files (other seeds) pooled into the table")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS))
    p.add_argument("--summary", action="store_true", help="only print the table of existing record files")
    a = p.parse_args(argv)
    if not a.summary:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        run(a.data, a.out, a.folds, a.seed, a.configs, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(summarise([a.out, *a.also]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
