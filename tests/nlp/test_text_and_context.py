"""Normalisation, language identification and rumour context features."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from nlp.langid import detect
from nlp.normalize import clean, head_tail, normalize
from nlp.rumor_features import FEATURES, cut_to_window, features, parse_time


def test_normalize_placeholders_and_folding() -> None:
    s = normalize("<p>Hello &amp; @JohnDoe see https://t.co/x 👍🏽️ 這個國家 أَحْمَد !!!!!!! 哈哈哈哈哈</p>")
    assert s == "hello & @user see http 👍 这个国家 احمد !!! 哈哈哈"


def test_clean_binary_and_none() -> None:
    assert clean(None) == "" and clean(b"") == ""
    assert clean(bytes(range(32)) * 20) == ""
    assert clean("ok\x00text") == "ok text"


def test_head_tail_keeps_both_ends() -> None:
    t = "A" * 5000 + "Z" * 5000
    cut = head_tail(t, 300)
    assert cut.startswith("A" * 200) and cut.endswith("Z" * 100) and len(cut) < 310


@pytest.mark.parametrize("text,lang", [("今天北京下雨了，出门记得带伞", "zh"), ("The mayor will speak tomorrow morning", "en"),
                                       ("مرحبا بكم في مدينتنا الجميلة", "ar"), ("", None), ("😀 123 https://x.y/z", None),
                                       ("東京は晴れです", "ja")])
def test_detect(text: str, lang: str | None) -> None:
    assert detect(text) == lang


def test_parse_time_forms() -> None:
    utc = datetime(2013, 3, 11, 5, 30, 22, tzinfo=timezone.utc)
    assert parse_time("Mon Mar 11 13:30:22 +0800 2013") == utc
    assert parse_time(int(utc.timestamp())) == utc
    assert parse_time("2013-03-11 13:30:22") == utc  # naive = Beijing time (CED convention)
    assert parse_time("03月11日 13:30", default_year=2013) == utc.replace(second=0)
    assert parse_time("03月11日 13:30") is None and parse_time("yesterday") is None and parse_time(None) is None


def test_features_publish_time_vs_first_hour() -> None:
    row = {"time": 1347334462, "user": {"verified": False, "followers": 227833, "time": 1312112304},
           "pics": 1, "has_url": False, "reposts_count": 225,
           "reposts": [{"date": "2012-09-11 11:35:48", "uid": "a", "text": "是真的么？", "is_reply": False},
                       {"date": "2012-09-11 11:40:00", "uid": "b", "text": "谣言", "is_reply": True},
                       {"date": "2012-09-11 14:00:00", "uid": "c", "text": "转发", "is_reply": False}]}
    pub = dict(zip(FEATURES, features(**cut_to_window(row, None))))
    hour = dict(zip(FEATURES, features(**cut_to_window(row, 3600))))
    assert pub["reposts_known"] == 0 and pub["log_reposts"] == 0 and pub["doubt_share"] == 0
    assert pub["user_known"] == 1 and pub["pics"] == 1 and pub["log_followers"] > 0.5
    assert hour["reposts_known"] == 1 and hour["reply_share"] == 0.5
    assert hour["doubt_share"] == 0.5 and hour["denial_share"] == 0.5
    assert cut_to_window(row, 3600)["reposts_count"] == 2  # the 14:00 repost is after the first hour
    assert features() == [0.0] * len(FEATURES)
    assert len(features(user={"followers": "nan?"}, reposts=[1, "x", {}])) == len(FEATURES)
