"""Character/word n-gram linear models stored safely inside a model directory.

Why this exists: on the shared data a char-n-gram logistic regression is a strong, cheap model
(issue 8's reference), and it is complementary to the small encoder; the default model blends the
two. Why hashing and no pickle: a model directory is data that may be copied between machines, and
unpickling runs code. An `NgramModel` is fully described by a JSON config (the hashing
vectoriser's parameters, which fix the feature space without a vocabulary) and plain float arrays
in a safetensors file (idf, coefficients, intercepts), both covered by the manifest's sha256.
sklearn's `HashingVectorizer` is stateless (MurmurHash3, seed 0), so the same text always maps to
the same columns.

Transform (identical at training and inference): hashed counts per analyser (char n-grams within
the text, optionally word n-grams), sublinear tf (1 + log tf), times idf, L2-normalised per
analyser block, blocks concatenated, then `X @ coef.T + intercept`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from nlp.errors import ModelError

FORMAT = "yuqing-ngram/1"


def l2_rows(X: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    """`X` (CSR, duplicates summed) with its values replaced by `data` (aligned with `X.data`),
    each row scaled to unit L2 norm (empty rows stay empty); float32, in place.

    Why element-wise on the CSR arrays rather than `diags(1/norm) @ X`: the same product without
    building a diagonal matrix per call (profiled: it cost more than the hashing itself)."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=X.shape[0])).astype(np.float32)
    norms[norms == 0] = 1.0
    X.data = (data * (np.float32(1.0) / norms)[rows]).astype(np.float32)
    return X


@dataclass
class Block:
    """One analyser: `analyzer` is "char", "char_wb" or "word".

    Hashed by default (`min_df` 0: `n_features` hashed columns, no vocabulary). With `min_df` >= 1
    the block keeps an explicit vocabulary instead (the n-grams seen in at least `min_df` training
    texts, stored in the JSON config): the feature space of issue 8's n-gram reference
    (TfidfVectorizer min_df 2), which on Arabic tweets is better than hashing (see the card) and,
    with few distinct n-grams, smaller too. `n_features` is then the vocabulary's size."""

    analyzer: str = "char"
    ngram_min: int = 1
    ngram_max: int = 4
    n_features: int = 1 << 19
    min_df: int = 0
    vocabulary: list[str] | None = None

    def _kw(self) -> dict[str, Any]:
        return {"token_pattern": r"(?u)\b\w+\b|[^\w\s]"} if self.analyzer == "word" else {}

    def vectorizer(self):  # type: ignore[no-untyped-def]
        """The sklearn vectorizer for this block, built once: a vocabulary block's dict of
        hundreds of thousands of n-grams costs tens of milliseconds to build, per call."""
        cached = self.__dict__.get("_vectorizer")
        if cached is not None and cached[0] is self.vocabulary:
            return cached[1]
        vec = self._build_vectorizer()
        self.__dict__["_vectorizer"] = (self.vocabulary, vec)
        return vec

    def _build_vectorizer(self):  # type: ignore[no-untyped-def]
        from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

        if self.min_df:
            if self.vocabulary is None:
                raise ValueError("vocabulary block is not fitted")
            return CountVectorizer(analyzer=self.analyzer, ngram_range=(self.ngram_min, self.ngram_max),
                                   vocabulary={t: i for i, t in enumerate(self.vocabulary)}, lowercase=False,
                                   dtype=np.float32, **self._kw())
        return HashingVectorizer(analyzer=self.analyzer, ngram_range=(self.ngram_min, self.ngram_max),
                                 n_features=self.n_features, alternate_sign=False, norm=None, lowercase=False,
                                 dtype=np.float32, **self._kw())

    def fit_vocabulary(self, texts: list[str]) -> None:
        """Vocabulary blocks: keep the n-grams found in at least `min_df` texts (sorted, so the
        column order is reproducible)."""
        from sklearn.feature_extraction.text import CountVectorizer

        if not self.min_df:
            return
        cv = CountVectorizer(analyzer=self.analyzer, ngram_range=(self.ngram_min, self.ngram_max), min_df=self.min_df,
                             lowercase=False, **self._kw()).fit(texts)
        self.vocabulary = sorted(cv.vocabulary_)
        self.n_features = len(self.vocabulary)


@dataclass
class Featurizer:
    blocks: list[Block] = field(default_factory=lambda: [Block()])
    idf: list[np.ndarray] | None = None  # one per block

    def counts(self, texts: list[str]) -> list[sp.csr_matrix]:
        return [b.vectorizer().transform(texts).tocsr() for b in self.blocks]

    def fit(self, texts: list[str]) -> Featurizer:
        n = len(texts)
        for b in self.blocks:
            b.fit_vocabulary(texts)
        self.idf = []
        for X in self.counts(texts):
            df = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
            self.idf.append((np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32))
        return self

    def weighted(self, texts: list[str]) -> list[sp.csr_matrix]:
        """One float32 CSR matrix per block: sublinear tf times idf, L2-normalised per row.

        Why element-wise on the CSR arrays rather than `X @ diags(idf)` and `diags(1/norm) @ X`:
        the same products, but a diagonal matrix of 2^20 columns is built and converted on every
        call, which cost more than the hashing itself (profiled on real posts)."""
        if self.idf is None:
            raise ValueError("Featurizer is not fitted")
        out = []
        for X, idf in zip(self.counts(texts), self.idf):
            X = X.astype(np.float32)
            X.sum_duplicates()
            out.append(l2_rows(X, (np.float32(1.0) + np.log(X.data)) * idf[X.indices]))
        return out

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """The model's feature matrix: the `weighted` blocks side by side."""
        out = self.weighted(texts)
        return sp.hstack(out, format="csr") if len(out) > 1 else out[0]

    @property
    def n_features(self) -> int:
        return sum(b.n_features for b in self.blocks)


@dataclass
class NgramModel:
    """A fitted linear model over `Featurizer` features. `classes` names the columns of
    `coef` (binary models: one row, the logit of classes[1])."""

    name: str
    classes: list[str]
    featurizer: Featurizer
    coef: np.ndarray  # (k, n_features), k = 1 for binary
    intercept: np.ndarray  # (k,)
    meta: dict[str, Any] = field(default_factory=dict)

    def decision(self, texts: list[str]) -> np.ndarray:
        """Logits: (n,) for a binary model, (n, k) otherwise.

        Block by block against a column-major copy of `coef` made once: `X @ coef.T` on the
        stacked matrix copied the whole (k, 2^20) coefficient matrix on every call."""
        coef_t = self.__dict__.get("_coef_t")
        if coef_t is None or coef_t.shape[::-1] != self.coef.shape:
            coef_t = self.__dict__["_coef_t"] = np.ascontiguousarray(self.coef.T)
        z = np.zeros((len(texts), coef_t.shape[1]), dtype=np.float32)
        start = 0
        for X in self.featurizer.weighted(texts):
            z += X @ coef_t[start:start + X.shape[1]]
            start += X.shape[1]
        z = z + self.intercept
        return z[:, 0] if len(self.classes) == 2 else z

    # -- storage --------------------------------------------------------------------------
    def save(self, directory: Path) -> list[str]:
        """Write `<name>.json` and `<name>.safetensors` into `directory`; returns the file names."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        tensors = {"coef": np.ascontiguousarray(self.coef, dtype=np.float16),
                   "intercept": np.ascontiguousarray(self.intercept, dtype=np.float32)}
        for i, idf in enumerate(self.featurizer.idf or []):
            tensors[f"idf.{i}"] = np.ascontiguousarray(idf, dtype=np.float16)
        save_file(tensors, str(directory / f"{self.name}.safetensors"))
        cfg = {"format": FORMAT, "name": self.name, "classes": self.classes,
               "blocks": [asdict(b) for b in self.featurizer.blocks], "meta": self.meta}
        compact = any(b.vocabulary for b in self.featurizer.blocks)  # one line per n-gram would double the size
        (directory / f"{self.name}.json").write_text(
            json.dumps(cfg, ensure_ascii=False, indent=None if compact else 1) + "\n", encoding="utf-8")
        return [f"{self.name}.json", f"{self.name}.safetensors"]

    @classmethod
    def load(cls, directory: Path, name: str) -> NgramModel:
        """Read a model written by `save`; ModelError names the file and the problem. The caller
        verifies the checksums (the manifest) before calling this."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        jpath, wpath = directory / f"{name}.json", directory / f"{name}.safetensors"
        try:
            cfg = json.loads(jpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{jpath}: cannot read n-gram config ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise ModelError(f"{jpath}: expected an n-gram config of format {FORMAT!r}")
        try:
            blocks = [Block(**b) for b in cfg["blocks"]]
            classes = [str(c) for c in cfg["classes"]]
        except (KeyError, TypeError) as e:
            raise ModelError(f"{jpath}: malformed n-gram config ({e})") from None
        for i, b in enumerate(blocks):
            if (b.analyzer not in ("char", "char_wb", "word") or not 0 < b.ngram_min <= b.ngram_max <= 8
                    or not 0 < b.n_features <= 1 << 24):
                raise ModelError(f"{jpath}: unsupported analyser settings in block {i} ({b.analyzer} "
                                 f"{b.ngram_min}-{b.ngram_max}, {b.n_features} features)")
            if b.min_df and (not isinstance(b.vocabulary, list) or len(b.vocabulary) != b.n_features
                             or not all(isinstance(t, str) for t in b.vocabulary)):
                n = len(b.vocabulary) if isinstance(b.vocabulary, list) else "no"
                raise ModelError(f"{jpath}: block {i} declares {b.n_features} features but stores {n} "
                                 "vocabulary entries (a list of strings of that length is required)")
        try:
            t = load_file(str(wpath))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{wpath}: cannot read n-gram weights ({type(e).__name__}: {e})") from None
        k = 1 if len(classes) == 2 else len(classes)
        nf = sum(b.n_features for b in blocks)
        coef, icpt = t.get("coef"), t.get("intercept")
        idf = [t.get(f"idf.{i}") for i in range(len(blocks))]
        if coef is None or coef.shape != (k, nf) or icpt is None or icpt.shape != (k,) or any(
                v is None or v.shape != (b.n_features,) for v, b in zip(idf, blocks)):
            raise ModelError(f"{wpath}: weight shapes do not match {jpath} (expected coef {(k, nf)})")
        feat = Featurizer(blocks=blocks, idf=[v.astype(np.float32) for v in idf])  # type: ignore[union-attr]
        return cls(name=name, classes=classes, featurizer=feat, coef=coef.astype(np.float32),
                   intercept=icpt.astype(np.float32), meta=cfg.get("meta") or {})


def fit_ngram(name: str, texts: list[str], labels: list[str], classes: list[str], blocks: list[Block],
              C: float = 4.0, class_weight: str | None = "balanced", max_iter: int = 300) -> NgramModel:
    """Fit idf and a logistic regression on normalised texts."""
    from sklearn.linear_model import LogisticRegression

    feat = Featurizer(blocks=blocks).fit(texts)
    X = feat.transform(texts)
    y = np.array([classes.index(lab) for lab in labels])
    lr = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, solver="lbfgs")
    lr.fit(X, y)
    coef = lr.coef_.astype(np.float32)
    icpt = lr.intercept_.astype(np.float32)
    return NgramModel(name=name, classes=classes, featurizer=feat, coef=coef, intercept=icpt,
                      meta={"C": C, "class_weight": class_weight, "rows": len(texts)})
