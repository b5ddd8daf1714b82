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
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nlp.normalize import normalize
from yuqing.config import TopicConfig
from yuqing.records import TopicScore

#: Topics scoring below this are left out of a post's answer (they would only be noise in the
#: index); the list is always sorted best first.
TOPIC_FLOOR = 0.2
_KW_SCORE = (0.0, 0.7, 0.85, 0.95)  # by number of distinct keywords hit (capped at 3)


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
        self.enc_center = None
        self.enc_protos = None
        if flat and encoder_weight > 0:
            vecs = [embed(ex) if ex else None for ex in examples]
            self.enc_center = torch.cat([v for v in vecs if v is not None]).mean(0)
            hidden = self.enc_center.shape[0]
            self.enc_protos = torch.stack([
                torch.nn.functional.normalize((v - self.enc_center).mean(0), dim=0) if v is not None else torch.zeros(hidden)
                for v in vecs])

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
        sim = self.similarity(texts, emb)
        out = []
        for i, text in enumerate(texts):
            scores = []
            for j in range(len(self.topics)):
                hits = sum(1 for p in self.keywords[j] if p.search(text)) if text else 0
                kw = _KW_SCORE[min(hits, 3)]
                proto = 0.0
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
