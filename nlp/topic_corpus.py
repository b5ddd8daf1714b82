"""Unlabelled text shipped in a model directory, from which a taxonomy's topics learn their words.

Why: a topic defined by a name, a few keywords and ~20 example posts only knows the words those
examples used; most posts about it use others ("物流很快，质量好" never names the product). The
model ships a sample of real unlabelled posts (no labels) as a compact sparse matrix of character
1-2-gram presences over a fixed vocabulary. When a taxonomy is loaded, `nlp.topics` pseudo-labels
these posts with the keywords and example prototypes, keeps the confident half, and fits a
multinomial naive Bayes model on them plus the examples: every topic gets weights for the words
its own examples never used. Nothing about any taxonomy is stored here; any config taxonomy works.

Storage: `topic_corpus.json` (format, analyser, vocabulary, provenance) and
`topic_corpus.safetensors` (CSR `indptr` int32, `indices` int16, `idf` float32), both covered by
the manifest's sha256. Binary term presence (not counts) keeps the file small; the TF-IDF weights
are recomputed from the presences and the idf at load time.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from nlp.errors import ModelError
from nlp.ngram import l2_rows

FORMAT = "yuqing-topic-corpus/1"
NAME = "topic_corpus"
FILES = (f"{NAME}.json", f"{NAME}.safetensors")
ANALYZER = "char_wb"
NGRAM = (1, 2)
MAX_VOCAB = 20000  # int16 column indices


@dataclass
class TopicCorpus:
    """A fixed char_wb 1-2-gram vocabulary with idf, and unlabelled documents as binary rows."""

    vocabulary: list[str]
    idf: np.ndarray  # (V,) float32
    docs: sp.csr_matrix  # (n_docs, V) binary presences
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self._vec = CountVectorizer(analyzer=ANALYZER, ngram_range=NGRAM, lowercase=False, binary=True,
                                    vocabulary={t: i for i, t in enumerate(self.vocabulary)}, dtype=np.float32)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """L2-normalised presence x idf rows for normalised texts (the docs use the same weighting)."""
        return self.weigh(self._vec.transform(texts))

    def weigh(self, presence: sp.csr_matrix) -> sp.csr_matrix:
        """Presence rows -> idf weights, L2-normalised per row. Element-wise on the CSR arrays (not
        `X @ diags(idf)`): building the diagonal matrix on every call costs more than the product."""
        X = sp.csr_matrix(presence, dtype=np.float32, copy=True)
        X.sum_duplicates()
        return l2_rows(X, self.idf[X.indices].astype(np.float32))

    def weighted_docs(self) -> sp.csr_matrix:
        return self.weigh(self.docs)

    # -- storage --------------------------------------------------------------------------
    def save(self, directory: Path) -> list[str]:
        from safetensors.numpy import save_file

        directory = Path(directory)
        d = self.docs.tocsr()
        save_file({"indptr": d.indptr.astype(np.int32), "indices": d.indices.astype(np.int16),
                   "idf": self.idf.astype(np.float32)}, str(directory / FILES[1]))
        cfg = {"format": FORMAT, "analyzer": ANALYZER, "ngram_range": list(NGRAM), "n_docs": int(d.shape[0]),
               "vocabulary": self.vocabulary, "meta": self.meta}
        (directory / FILES[0]).write_text(json.dumps(cfg, ensure_ascii=False) + "\n", encoding="utf-8")
        return list(FILES)

    @classmethod
    def load(cls, directory: Path) -> TopicCorpus:
        """Read a corpus written by `save` (the caller has verified the manifest's checksums)."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        jpath, wpath = directory / FILES[0], directory / FILES[1]
        try:
            cfg = json.loads(jpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{jpath}: cannot read the topic corpus config ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise ModelError(f"{jpath}: expected a topic corpus of format {FORMAT!r}")
        vocab = cfg.get("vocabulary")
        if (cfg.get("analyzer") != ANALYZER or list(cfg.get("ngram_range") or []) != list(NGRAM)
                or not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or len(vocab) > MAX_VOCAB):
            raise ModelError(f"{jpath}: unsupported topic corpus (needs {ANALYZER} {NGRAM} and a vocabulary of "
                             f"at most {MAX_VOCAB} strings)")
        try:
            t = load_file(str(wpath))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{wpath}: cannot read the topic corpus ({type(e).__name__}: {e})") from None
        indptr, indices, idf = t.get("indptr"), t.get("indices"), t.get("idf")
        n = cfg.get("n_docs")
        if (indptr is None or indices is None or idf is None or idf.shape != (len(vocab),) or not isinstance(n, int)
                or indptr.shape != (n + 1,) or int(indptr[-1]) != indices.shape[0]
                or (indices.size and (int(indices.min()) < 0 or int(indices.max()) >= len(vocab)))):
            raise ModelError(f"{wpath}: arrays do not match {jpath} ({n} documents, {len(vocab)} terms)")
        docs = sp.csr_matrix((np.ones(indices.shape[0], dtype=np.float32), indices.astype(np.int32), indptr),
                             shape=(n, len(vocab)))
        return cls(vocabulary=list(vocab), idf=idf.astype(np.float32), docs=docs, meta=cfg.get("meta") or {})


def build_corpus(texts: list[str], max_docs: int, max_vocab: int = MAX_VOCAB, min_df: int = 3, seed: int = 0,
                 meta: dict[str, Any] | None = None) -> TopicCorpus:
    """Sample up to `max_docs` non-empty normalised texts and keep the `max_vocab` most frequent
    char_wb 1-2-grams seen in >= `min_df` of them; idf is sklearn's smooth idf over the sample."""
    from sklearn.feature_extraction.text import CountVectorizer

    if max_vocab > MAX_VOCAB:
        raise ValueError(f"max_vocab {max_vocab} exceeds {MAX_VOCAB} (int16 column indices)")
    pool = [t for t in texts if t and t.strip()]
    rng = random.Random(seed)
    if len(pool) > max_docs:
        pool = rng.sample(pool, max_docs)
    if not pool:
        raise ValueError("no non-empty texts for the topic corpus")
    cv = CountVectorizer(analyzer=ANALYZER, ngram_range=NGRAM, lowercase=False, binary=True, min_df=min_df,
                         max_features=max_vocab, dtype=np.float32)
    X = cv.fit_transform(pool).tocsr()
    vocab = [""] * len(cv.vocabulary_)
    for term, i in cv.vocabulary_.items():
        vocab[i] = term
    df = np.asarray((X > 0).sum(0)).ravel()
    idf = (np.log((1 + X.shape[0]) / (1 + df)) + 1.0).astype(np.float32)
    X.sort_indices()
    return TopicCorpus(vocabulary=vocab, idf=idf, docs=X, meta={**(meta or {}), "n_docs": X.shape[0]})


def main(argv: list[str] | None = None) -> int:
    """`yuqing topic-corpus --input posts.jsonl --out DIR`: a deployment's topic corpus from its own
    posts (JSON lines with a `text`, as the API's export and `yuqing classify` read them); config
    then names DIR as `nlp.topic_corpus`. Unreadable lines are reported on stderr and skipped."""
    import argparse
    import sys

    from nlp.normalize import normalize

    p = argparse.ArgumentParser(prog="yuqing topic-corpus", description=main.__doc__)
    p.add_argument("--input", type=Path, required=True, help="JSON lines with a 'text' field")
    p.add_argument("--out", type=Path, required=True, help="directory to write topic_corpus.json/.safetensors into")
    p.add_argument("--max-docs", type=int, default=25000)
    p.add_argument("--min-df", type=int, default=3)
    args = p.parse_args(argv)
    texts: list[str] = []
    try:
        with args.input.open(encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"{args.input}:{n}: not JSON ({e.msg}); skipped", file=sys.stderr)
                    continue
                text = row.get("text") if isinstance(row, dict) else None
                if not isinstance(text, str):
                    print(f"{args.input}:{n}: no 'text' string; skipped", file=sys.stderr)
                    continue
                texts.append(normalize(text))
    except OSError as e:
        print(f"{args.input}: cannot read ({e.strerror})", file=sys.stderr)
        return 2
    try:
        corpus = build_corpus(texts, max_docs=args.max_docs, min_df=args.min_df,
                              meta={"source": str(args.input), "posts_read": len(texts)})
    except ValueError as e:
        print(f"{args.input}: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    corpus.save(args.out)
    print(f"{args.out}: {corpus.docs.shape[0]} posts, {len(corpus.vocabulary)} terms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
