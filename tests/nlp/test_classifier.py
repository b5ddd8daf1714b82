"""The inference API: every input gets a defined answer, batching does not change answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nlp.classifier import Classifier, ClassifyInput
from nlp.encoding import encode
from nlp.normalize import normalize
from yuqing.config import TopicConfig
from yuqing.records import SENTIMENTS, Classification

POSTS = {
    "zh": "这家酒店房间很差，服务太慢，非常失望",
    "en": "I love the new bus schedule, great work by the city",
    "ar": "الخدمة في المدينة اليوم سيئة جدا والناس غاضبون",
    "mixed": "今天 the water office 很好 @someone https://t.co/abc 👍🏽",
}


@pytest.fixture(scope="module")
def clf(tiny_model_dir: Path) -> Classifier:
    topics = [
        TopicConfig(name="water", description="water supply", keywords=["停水", "water outage"], examples=["停水三天了", "no water in our street"]),
        TopicConfig(name="transport", keywords=["公交", "bus"], examples=["公交车晚点", "the bus was late"]),
    ]
    return Classifier.load(tiny_model_dir, topics=topics, device="auto", threads=1, batch_size=3)


def _valid(c: Classification) -> None:
    assert c.sentiment in SENTIMENTS
    assert set(c.sentiment_scores) == set(SENTIMENTS)
    assert math.isclose(sum(c.sentiment_scores.values()), 1.0, abs_tol=1e-4)
    assert c.sentiment == max(c.sentiment_scores, key=c.sentiment_scores.get)
    assert 0.0 <= c.rumor <= 1.0
    assert c.model == "tiny@0.0.1"
    assert [t.score for t in c.topics] == sorted((t.score for t in c.topics), reverse=True)


def test_languages_are_detected_and_every_answer_is_valid(clf: Classifier) -> None:
    items = [ClassifyInput(id=k, text=v) for k, v in POSTS.items()]
    preds = clf.predict(items)
    assert [p.id for p in preds] == list(POSTS)
    assert {p.id: p.lang for p in preds} == {"zh": "zh", "en": "en", "ar": "ar", "mixed": "zh"}
    for p in preds:
        _valid(p.classification)


def test_given_language_is_kept_and_normalised(clf: Classifier) -> None:
    (p,) = clf.predict([ClassifyInput(id="1", text="hello there", lang="en-GB")])
    assert p.lang == "en"


@pytest.mark.parametrize("text", ["", "   ", None, b"\x00\x01\x02\xff" * 500, "\x00" * 100])
def test_empty_and_binary_get_the_defined_no_content_answer(clf: Classifier, text) -> None:  # type: ignore[no-untyped-def]
    (p,) = clf.predict([ClassifyInput(id="x", text=text)])
    c = p.classification
    assert p.lang is None
    assert c.sentiment == "neutral" and c.sentiment_scores == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}
    assert c.topics == []
    _valid(c)


def test_one_megabyte_post_is_cut_head_and_tail(clf: Classifier) -> None:
    huge = "开头很好。" + "中间的内容" * 200_000 + " the end is terrible"
    assert len(huge) > 1_000_000
    (p,) = clf.predict([ClassifyInput(id="h", text=huge)])
    _valid(p.classification)
    ids = encode(clf.tokenizer, [normalize(huge)], clf.max_length)[0]
    assert len(ids) == clf.max_length
    assert ids[0] == clf.tokenizer.cls_token_id and ids[-1] == clf.tokenizer.sep_token_id
    piece = lambda s: clf.tokenizer.backend_tokenizer.encode(normalize(s), add_special_tokens=False).ids  # noqa: E731
    assert ids[1:4] == piece("开头很好。中间")[:3]  # head kept
    assert ids[-4:-1] == piece("中间的内容 the end is terrible")[-3:]  # tail kept


def test_batching_and_bucketing_do_not_change_answers(clf: Classifier) -> None:
    texts = list(POSTS.values()) + ["短", "a much longer english post about the water office and the bus " * 5, ""]
    items = [ClassifyInput(id=str(i), text=t, lang="xx") for i, t in enumerate(texts)]
    together = clf.classify(items)
    alone = [clf.classify([it])[0] for it in items]
    for a, b in zip(together, alone):
        assert a.sentiment == b.sentiment
        for k in SENTIMENTS:
            assert abs(a.sentiment_scores[k] - b.sentiment_scores[k]) < 1e-4
        assert abs(a.rumor - b.rumor) < 1e-4


def test_rumour_context_is_used(clf: Classifier) -> None:
    base = dict(id="r", text="紧急扩散！医院今天出事了", lang="zh", time=1_400_000_000)
    bare = clf.classify([ClassifyInput(**base)])[0].rumor
    ctx = clf.classify([ClassifyInput(**base, user={"verified": False, "followers": 10}, pics=1,
                                      reposts=[{"date": "2014-05-14 01:00:00", "text": "谣言吧？", "uid": "1"}],
                                      reposts_count=1)])[0].rumor
    assert 0.0 <= bare <= 1.0 and 0.0 <= ctx <= 1.0
    assert bare != ctx


def test_keyword_topic_comes_first(clf: Classifier) -> None:
    c = clf.classify([ClassifyInput(id="t", text="我们小区停水了，公交也停了吗")])[0]
    names = [t.topic for t in c.topics]
    assert "water" in names and "transport" in names
    c2 = clf.classify([ClassifyInput(id="t2", text="There is a water outage in the north district")])[0]
    assert c2.topics and c2.topics[0].topic == "water" and c2.topics[0].score >= 0.7


def test_no_topics_configured_gives_empty_topics(tiny_model_dir: Path) -> None:
    c = Classifier.load(tiny_model_dir).classify([ClassifyInput(id="1", text="停水了")])[0]
    assert c.topics == []


def test_empty_batch(clf: Classifier) -> None:
    assert clf.classify([]) == []


def test_topic_matcher_mixes_encoder_similarity_when_weighted() -> None:
    """With encoder_weight > 0 the embedding space moves the ranking (fake, controlled embeddings)."""
    import torch

    from nlp.topics import TopicMatcher

    topics = [TopicConfig(name="a", examples=["alpha one", "alpha two"]), TopicConfig(name="b", examples=["beta one", "beta two"])]
    space = {"alpha one": [1.0, 0.0], "alpha two": [0.9, 0.1], "beta one": [0.0, 1.0], "beta two": [0.1, 0.9]}
    embed = lambda texts: torch.tensor([space.get(t, [0.5, 0.5]) for t in texts])  # noqa: E731
    lexical_only = TopicMatcher(topics, embed, threshold=0.3, slope=10.0, encoder_weight=0.0)
    mixed = TopicMatcher(topics, embed, threshold=0.3, slope=10.0, encoder_weight=5.0)
    text, emb = ["alpha"], torch.tensor([[0.0, 1.0]])  # says "alpha", embeds like "beta"
    assert lexical_only.scores(text, emb)[0][0] > lexical_only.scores(text, emb)[0][1]
    assert mixed.scores(text, emb)[0][1] > mixed.scores(text, emb)[0][0]
