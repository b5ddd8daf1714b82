"""The fast inference path (token-length buckets, flat padding, one forward per batch, shortcut
language detection) gives the answers of the plainest possible computation: one post at a time,
no padding, straight through the model. This is the before/after check for speed work."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from nlp.classifier import Classifier, ClassifyInput
from nlp.encoding import encode, length_buckets, pad
from nlp.langid import detect
from nlp.normalize import clean, normalize
from nlp.rumor_features import features as rumor_features
from yuqing.records import SENTIMENTS

TEXTS = [
    "这家酒店房间很差，服务太慢，非常失望",
    "I love the new bus schedule, great work by the city",
    "الخدمة في المدينة اليوم سيئة جدا والناس غاضبون",
    "今天 the water office 很好 @someone https://t.co/abc 👍🏽",
    "短",
    "a much longer english post about the water office and the bus " * 12,
    "停水" * 200,
    "",
]


@pytest.fixture(scope="module")
def clf(tiny_model_dir: Path) -> Classifier:
    return Classifier.load(tiny_model_dir, topics=None, device="cpu", threads=1, batch_size=3, backend="torch")


def test_fast_path_equals_one_post_at_a_time(clf: Classifier) -> None:
    rng = random.Random(1)
    items = [ClassifyInput(id=str(i), text=t, time=1_500_000_000 + i, user={"followers_count": rng.randint(0, 9999)})
             for i, t in enumerate(TEXTS * 2)]
    rng.shuffle(items)
    preds = clf.predict(items)
    model = clf.model
    for it, p in zip(items, preds):
        text = normalize(it.text)
        assert p.id == it.id
        if not text:
            assert p.classification.sentiment_scores == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}
            assert p.lang is None
            continue
        assert p.lang == detect(clean(it.text))
        (ids,) = encode(clf.tokenizer, [text], clf.max_length)
        x = torch.tensor([ids])
        f = torch.tensor([rumor_features(**it.context())], dtype=torch.float32)
        with torch.no_grad():
            out = model(x, torch.ones_like(x), f)
        ref = torch.softmax(out.sentiment_logits, -1)[0].tolist()
        for k, v in zip(SENTIMENTS, ref):
            assert abs(p.classification.sentiment_scores[k] - v) < 1e-4
        assert abs(p.classification.rumor - torch.sigmoid(out.rumor_logit)[0].item()) < 1e-4


def test_pad_matches_row_by_row_padding() -> None:
    rng = random.Random(0)
    rows = [[rng.randint(5, 99) for _ in range(rng.randint(1, 40))] for _ in range(33)]
    ids, mask = pad(rows, 0)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.shape == mask.shape == (33, max(map(len, rows)))
    for i, r in enumerate(rows):
        assert ids[i].tolist() == r + [0] * (ids.shape[1] - len(r))
        assert mask[i].tolist() == [1] * len(r) + [0] * (ids.shape[1] - len(r))


def test_buckets_cover_every_row_once_longest_first() -> None:
    lengths = [3, 50, 7, 7, 128, 2, 60]
    batches = length_buckets(lengths, 3)
    flat = list(itertools.chain.from_iterable(batches))
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
