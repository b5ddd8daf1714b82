"""Topics over the agency's own taxonomy: keyword rules plus prototype similarity.

Why this mechanism first: an agency defines topics in config (name, description, keywords, a few
example posts per language) long before it has hundreds of labelled posts per topic, so there is
nothing to train a head on. A keyword hit is strong, explicit evidence an analyst can audit;
similarity to the examples catches posts that say the same thing in other words. The two are
combined as a noisy-OR, so either kind of evidence can raise a topic and both together raise it
further. Multi-label: each topic is scored independently.

Similarity to a topic = cosine to its prototype (the mean of its examples) in two spaces: character
1-2-gram TF-IDF fitted on the taxonomy's own examples (weight 1), and the encoder's mean-pooled
embedding centred on the examples' mean (weight `encoder_weight` from the manifest). Why both: the
n-gram space works with any encoder and in every script; the encoder space is what generalises
across wording and languages once the encoder is good. Measured on issue 8's stand-in taxonomy
(10 shopping categories, 20 examples each): the bootstrap encoder's embeddings separate the
categories no better than chance, and mixing them in lowers the n-gram figure, so the bootstrap
ships with `encoder_weight` 0.

Expansion from unlabelled text (a `nlp.topic_corpus` built from the deployment's own posts and named by
`nlp.topic_corpus` in config, or one a deployer's model directory lists): the prototypes above
only know the examples' words. At load time the matcher scores the corpus's unlabelled posts with
the examples' prototypes (in the corpus's char 1-2-gram space) plus `SEED_KW_WEIGHT` per keyword
hit, keeps the most confident half (largest margin between the best and second topic) as
pseudo-labelled posts, adds the least topical quarter as a background class, and fits a
multinomial naive Bayes model on them plus the examples (each weighted `EXAMPLE_WEIGHT`). A post's
prototype evidence for a topic is then that model's posterior: it covers words the examples never
used but the topic's posts do. Measured on issue 8's stand-in (models/default/README.md, corpus built
from the unlabelled training reviews at evaluation time): macro-F1 0.67 (example prototypes) -> 0.80. Per post it costs one sparse vectorisation and a
(terms x topics) product.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from nlp.normalize import normalize
from nlp.topic_corpus import FILES as CORPUS_FILES
from nlp.topic_corpus import TopicCorpus
from yuqing.config import TopicConfig
from yuqing.records import TopicScore

#: Topics scoring below this are left out of a post's answer (they would only be noise in the
#: index); the list is always sorted best first.
TOPIC_FLOOR = 0.2
_KW_SCORE = (0.0, 0.7, 0.85, 0.95)  # by number of distinct keywords hit (capped at 3)
#: pseudo-labelling of the corpus: added to a post's prototype cosine per keyword hit
SEED_KW_WEIGHT = 0.05
#: share of corpus posts kept as pseudo-labelled (most confident first), and as background
SEED_KEEP = 0.5
BACKGROUND_SHARE = 0.25
#: weight of each configured example in the naive Bayes fit, and its additive smoothing
EXAMPLE_WEIGHT = 5.0
NB_ALPHA = 0.1
#: with an expansion, a keyword rule is one word among the many the posterior already weighs, so its
#: noisy-OR weight is scaled down (1.0 cut the stand-in's macro-F1 from 0.803 to 0.783; 0.1: 0.804),
#: but a hit still keeps the topic above TOPIC_FLOOR (the rule an analyst wrote stays visible)
KW_WEIGHT_EXPANDED = 0.1
KW_VISIBLE = 0.21
#: a post is scored by the expansion only when at least this share of its char 1-2-grams are in the
#: corpus vocabulary (else by the example prototypes: a language or script the corpus lacks)
MIN_COVERAGE = 0.5


def _keyword_pattern(kw: str) -> re.Pattern[str] | None:
    k = normalize(kw)
    if not k:
        return None
    # Latin/Arabic words need word boundaries ("ban" must not hit "bank"); CJK has no spaces.
    if re.search(r"[\u3400-\u9fff]", k):
        return re.compile(re.escape(k))
    return re.compile(r"(?<!\w)" + re.escape(k) + r"(?!\w)")


class TopicMatcher:
    """Scores normalised texts + embeddings against a fixed taxonomy (built once per Classifier)."""

    def __init__(
        self,
        topics: Sequence[TopicConfig],
        embed: Callable[[list[str]], torch.Tensor],
        threshold: float,
        slope: float,
        encoder_weight: float = 0.0,
        corpus: TopicCorpus | None = None,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.topics = list(topics)
        self.threshold = threshold
        self.slope = slope
        self.encoder_weight = encoder_weight
        self.keywords = [[p for p in (_keyword_pattern(k) for k in t.keywords) if p] for t in self.topics]
        examples = [[normalize(e) for e in [*t.examples, t.description] if e and e.strip()] for t in self.topics]
        self.has_examples = [any(ex) for ex in examples]
        flat = [e for ex in examples for e in ex if e]
        self.vectorizer = None
        self.lex_protos = None
        if flat:
            self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 2), sublinear_tf=True).fit(flat)
            rows = []
            for ex in examples:
                v = self.vectorizer.transform(ex).mean(axis=0) if ex else np.zeros((1, len(self.vectorizer.vocabulary_)))
                v = np.asarray(v).ravel()
                n = np.linalg.norm(v)
                rows.append(v / n if n > 0 else v)
            self.lex_protos = np.stack(rows)
        self.corpus = corpus
        self._analyse = corpus._vec.build_analyzer() if corpus is not None else None
        self.nb: tuple[np.ndarray, np.ndarray] | None = None  # (log p(term | class).T, log prior)
        self.nb_topics: list[int] = []
        if corpus is not None:
            self._fit_expansion(corpus, examples)
        self.enc_center = None
        self.enc_protos = None
        if flat and encoder_weight > 0:
            vecs = [embed(ex) if ex else None for ex in examples]
            self.enc_center = torch.cat([v for v in vecs if v is not None]).mean(0)
            hidden = self.enc_center.shape[0]
            self.enc_protos = torch.stack([
                torch.nn.functional.normalize((v - self.enc_center).mean(0), dim=0) if v is not None else torch.zeros(hidden)
                for v in vecs])

    def _fit_expansion(self, corpus: TopicCorpus, examples: list[list[str]]) -> None:
        """Pseudo-label the corpus (prototype cosine + keyword hits) and fit the naive Bayes model.
        Keyword hits in the corpus are read from its 1-2-gram presences: a keyword hits a post when
        all of its character bigrams (its character, if it has one) are present."""
        kw_cols = [[self._keyword_columns(corpus, k) for k in t.keywords] for t in self.topics]
        learn = [j for j in range(len(self.topics)) if any(examples[j]) or any(c for c in kw_cols[j])]
        if not learn:
            return
        U = corpus.weighted_docs()
        V = U.shape[1]
        ex_rows = [corpus.transform(examples[j]) if examples[j] else None for j in learn]
        protos = np.zeros((len(learn), V))
        for i, X in enumerate(ex_rows):
            if X is not None and X.nnz:
                v = np.asarray(X.mean(axis=0)).ravel()
                protos[i] = v / np.linalg.norm(v)
        seed = np.asarray(U @ protos.T)
        pres = corpus.docs
        for i, j in enumerate(learn):
            for cols in kw_cols[j]:
                if cols:
                    seed[:, i] += SEED_KW_WEIGHT * (np.asarray(pres[:, cols].sum(axis=1)).ravel() >= len(cols))
        best = seed.max(axis=1)
        part = np.sort(seed, axis=1)
        margin = part[:, -1] - (part[:, -2] if seed.shape[1] > 1 else 0.0)
        label = seed.argmax(axis=1)
        keep = margin > np.quantile(margin, 1.0 - SEED_KEEP)
        background = (~keep) & (best <= np.quantile(best, BACKGROUND_SHARE))
        k = len(learn)
        rows = [U[keep], U[background]]
        y = [label[keep], np.full(int(background.sum()), k)]
        w = [np.ones(int(keep.sum())), np.ones(int(background.sum()))]
        for i, X in enumerate(ex_rows):
            if X is not None:
                rows.append(X)
                y.append(np.full(X.shape[0], i))
                w.append(np.full(X.shape[0], EXAMPLE_WEIGHT))
        Xa = sp.vstack(rows).tocsr()
        ya = np.concatenate(y)
        wa = np.concatenate(w)
        onehot = sp.csr_matrix((wa, (ya, np.arange(len(ya)))), shape=(k + 1, len(ya)))
        counts = np.asarray((onehot @ Xa).todense()) + NB_ALPHA
        class_w = np.asarray(onehot.sum(axis=1)).ravel()
        flp = np.log(counts) - np.log(counts.sum(axis=1, keepdims=True))
        prior = np.log(np.maximum(class_w, 1e-9) / class_w.sum())
        self.nb = (np.ascontiguousarray(flp.T, dtype=np.float32), prior.astype(np.float32))
        self.nb_topics = learn

    @staticmethod
    def _keyword_columns(corpus: TopicCorpus, kw: str) -> list[int]:
        k = normalize(kw)
        grams = [k] if len(k) == 1 else [k[i:i + 2] for i in range(len(k) - 1)]
        vocab = corpus._vec.vocabulary
        if not k or any(g not in vocab for g in grams):
            return []
        return sorted({vocab[g] for g in grams})

    def expanded(self, texts: Sequence[str]) -> np.ndarray | None:
        """(posts, topics) naive Bayes posterior of each topic (background class left out), or
        None without a corpus. A post with no corpus n-gram gets zeros (nothing to go on)."""
        if self.nb is None or self.corpus is None:
            return None
        X = self.corpus.transform(list(texts))
        flp_t, prior = self.nb
        jll = np.asarray(X @ flp_t) + prior
        jll -= jll.max(axis=1, keepdims=True)
        post = np.exp(jll)
        post /= post.sum(axis=1, keepdims=True)
        out = np.zeros((len(texts), len(self.topics)))
        out[:, self.nb_topics] = post[:, : len(self.nb_topics)]
        out[np.diff(X.indptr) == 0] = 0.0
        return out

    def coverage(self, texts: Sequence[str]) -> np.ndarray:
        """Share of each text's char 1-2-grams that the corpus vocabulary knows (0 without a corpus)."""
        if self.corpus is None:
            return np.zeros(len(texts))
        analyse = self._analyse
        vocab = self.corpus._vec.vocabulary
        out = np.zeros(len(texts))
        for i, t in enumerate(texts):
            grams = analyse(t) if t else []
            if grams:
                out[i] = sum(1 for g in grams if g in vocab) / len(grams)
        return out

    def similarity(self, texts: Sequence[str], emb: torch.Tensor) -> np.ndarray:
        """(posts, topics) similarity: n-gram cosine, plus the weighted encoder cosine."""
        n = len(texts)
        if self.vectorizer is None or self.lex_protos is None:
            return np.zeros((n, len(self.topics)))
        lex = np.asarray(self.vectorizer.transform(list(texts)) @ self.lex_protos.T)
        if self.enc_protos is None or self.enc_center is None:
            return lex
        e = torch.nn.functional.normalize(emb.float() - self.enc_center, dim=-1)
        enc = (e @ self.enc_protos.T).numpy()
        return (lex + self.encoder_weight * enc) / (1.0 + self.encoder_weight)

    def scores(self, texts: Sequence[str], emb: torch.Tensor) -> list[list[float]]:
        """Raw per-topic scores in [0, 1] (posts x topics), in taxonomy order."""
        exp = self.expanded(texts)
        sim = self.similarity(texts, emb)
        covered = self.coverage(texts) >= MIN_COVERAGE if exp is not None else None
        out = []
        for i, text in enumerate(texts):
            scores = []
            for j in range(len(self.topics)):
                hits = sum(1 for p in self.keywords[j] if p.search(text)) if text else 0
                kw = _KW_SCORE[min(hits, 3)]
                proto = 0.0
                if text and exp is not None and covered is not None and covered[i]:
                    s = 1.0 - (1.0 - KW_WEIGHT_EXPANDED * kw) * (1.0 - float(exp[i, j]))
                    scores.append(max(s, KW_VISIBLE) if hits else s)
                    continue
                if text and self.has_examples[j]:
                    proto = 1.0 / (1.0 + math.exp(-self.slope * (float(sim[i, j]) - self.threshold)))
                scores.append(1.0 - (1.0 - kw) * (1.0 - proto))
            out.append(scores)
        return out

    def match(self, texts: Sequence[str], emb: torch.Tensor, floor: float = TOPIC_FLOOR) -> list[list[TopicScore]]:
        """Topics at or above `floor`, best first, for each text."""
        res = []
        for row in self.scores(texts, emb):
            ranked = sorted(((s, t.name) for s, t in zip(row, self.topics) if s >= floor), key=lambda x: -x[0])
            res.append([TopicScore(topic=name, score=round(min(max(s, 0.0), 1.0), 6)) for s, name in ranked])
        return res


def matcher_for_model(path: Path, listed: set[str], topics: Sequence[TopicConfig] | None,
                      embed: Callable[[list[str]], torch.Tensor], head: Any,
                      corpus: TopicCorpus | None = None) -> TopicMatcher | None:
    """The taxonomy's matcher for a loaded model directory. Unlabelled text for the expansion: the
    deployment's `corpus` when given (built from its own posts, `yuqing topic-corpus`), else the
    directory's own when its manifest lists one (checksums verified by the loader), else none
    (prototypes only). `head` is the manifest's topics head (threshold, slope, encoder_weight).

    Why the shipped default carries no corpus: the only unlabelled text at build time is the shared
    training data, whose licences forbid redistributing it inside the repository, even as n-gram
    presence rows; a deployment's own crawled posts are also the better match for its taxonomy."""
    if not topics:
        return None
    if corpus is None and all(f in listed for f in CORPUS_FILES):
        corpus = TopicCorpus.load(path)
    return TopicMatcher(topics, embed, head.threshold, head.slope, head.encoder_weight, corpus=corpus)
