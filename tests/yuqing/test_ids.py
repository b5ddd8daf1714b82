from __future__ import annotations

from yuqing.ids import canonical_url, doc_id, pseudonymise, text_hash


def test_same_post_same_id_whatever_the_url_dressing() -> None:
    a = doc_id(url="HTTP://News.Example.cn/a/1.html?b=2&a=1&utm_source=wx#top")
    b = doc_id(url="http://news.example.cn/a/1.html?a=1&b=2")
    assert a == b
    assert doc_id(url="http://news.example.cn/a/2.html") != a
    assert canonical_url("http://x.cn/p?spm=1&id=3") == "http://x.cn/p?id=3"


def test_platform_id_wins_over_url() -> None:
    assert doc_id(platform="weibo", platform_id="123", url="http://a") == doc_id(platform="weibo", platform_id="123")
    assert doc_id(platform="weibo", platform_id="123") != doc_id(platform="x", platform_id="123")


def test_text_hash_folds_width_case_and_spaces() -> None:
    assert text_hash("兰山  水务局 ＡＢＣ") == text_hash("兰山 水务局 abc")
    assert text_hash("a") != text_hash("b")


def test_pseudonyms_are_keyed_and_stable() -> None:
    k1, k2 = b"k" * 32, b"j" * 32
    assert pseudonymise(k1, "weibo", "u1") == pseudonymise(k1, "weibo", "u1")
    assert pseudonymise(k1, "weibo", "u1") != pseudonymise(k2, "weibo", "u1")
    assert "u1" not in pseudonymise(k1, "weibo", "u1")
    assert pseudonymise(k1, "weibo", None) is None
