"""The English n-gram cross-validation (`nlp.en_cv`): docs/decisions.md ("English n-gram: the hashed
model stays") rests on its table, so its pairing arithmetic and its
blocks are checked on small real inputs (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nlp.en_cv import BASELINE, BLOCKS, CONFIGS, _block, summarise
from nlp.ngram import Featurizer
from nlp.train_default import SENT_C, sentiment_blocks


def test_summarise_pairs_folds_with_the_baseline_and_pools_repeats(tmp_path: Path) -> None:
    recs = [{"fold": f, "config": c, "metric": m, "umsab_macro_f1": m + 0.1}
            for c, ms in ((BASELINE, [0.60, 0.62, 0.64]), ("other", [0.61, 0.64, 0.67])) for f, m in enumerate(ms)]
    p = tmp_path / "s0.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    other = next(line for line in summarise([p]).splitlines() if line.startswith("| other"))
    # paired differences 0.01, 0.02, 0.03: mean 0.02, SE = 0.01 / sqrt(3)
    assert other.count(f"+0.0200 ± {0.01 / np.sqrt(3):.4f}") == 2 and "| 0.6400 | 0.7400 |" in other
    q = tmp_path / "s1.jsonl"  # a repeat with the same fold numbers is pooled, not overwritten
    q.write_text(p.read_text())
    assert next(line for line in summarise([p, q]).splitlines() if line.startswith("| other")).startswith("| other | 6 |")


def test_the_shipped_english_blocks_are_the_cross_validation_baseline() -> None:
    """The table compares candidates with what `train_default` ships for English (hashed char
    1-5 + word 1-2-grams at C 2): if the shipped setting changes, the baseline must follow."""
    blocks, C = CONFIGS[BASELINE]
    assert SENT_C["en"] == C
    got = [(b.analyzer, b.ngram_min, b.ngram_max, b.n_features, b.min_df) for b in sentiment_blocks(lang="en")]
    assert got == [(*BLOCKS[n][:3], BLOCKS[n][3], BLOCKS[n][4]) for n in blocks]


def test_vocabulary_and_hashed_blocks_fit_real_text() -> None:
    texts = ["what a great day", "worst service ever", "the meeting is today", "great great day", "so bad, worst"]
    feat = Featurizer(blocks=[_block("c15"), _block("w12"), _block("h15")]).fit(texts)
    c15, w12, h15 = feat.weighted(texts)
    assert h15.shape[1] == 1 << 18 and 0 < w12.shape[1] < 20 and c15.shape[1] > w12.shape[1]
    assert "great" in feat.blocks[1].vocabulary and "great day" in feat.blocks[1].vocabulary
