"""The watchlist query language: operators, phrases, NEAR, wildcards, fields, parse errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crawlers.matching import Matcher
from crawlers.query import Doc, QuerySyntaxError, parse
from yuqing.config import WatchlistConfig


def hit(query: str, text: str, **kw: str) -> bool:
    return parse(query).matches(Doc.of(text, **kw))


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("水管局 AND 溃坝", "传言水管局辖区溃坝", True),
        ("水管局 AND 溃坝", "水管局召开会议", False),
        ("水管局 溃坝", "水管局 溃坝", True),  # adjacent words: one phrase
        ("水管局 溃坝", "水管局辖区溃坝", False),
        ('"水管局" 溃坝', "水管局辖区溃坝", True),  # a phrase next to a word: implicit AND
        ("(NWRA OR 水管局) AND NOT 演习", "水管局开展防汛工作", True),
        ("(NWRA OR 水管局) AND NOT 演习", "水管局开展防汛演习", False),
        ("NWRA OR dam AND crack", "the dam held", False),  # AND binds tighter than OR
        ("NWRA OR dam AND crack", "NWRA statement", True),
        ("Ministry of Water Resources", "the ministry of water   resources said", True),
        ("department and services", "Department and Services", True),  # lower-case 'and' is a word
        ("dam*", "the dams were inspected", True),
        ("dam*", "a madam spoke", False),
        ("水利*", "水利局发布", True),
        ("سد*", "السدود آمنة", True),  # Arabic: clitics attach ("ال"), so no left word edge
        ("سد*", "أمطار غزيرة", False),
        ("水管局 NEAR/3 溃坝", "水管局称溃坝为谣言", True),  # 1 token between
        ("水管局 NEAR/5 溃坝", "溃坝传言今日被水管局否认", True),  # either order; 5 characters between
        ("水管局 NEAR/4 溃坝", "溃坝传言今日被水管局否认", False),
        ("水管局 NEAR/1 溃坝", "水管局今日否认溃坝", False),
        ("NWRA NEAR/2 dam", "NWRA says the dam is safe", True),
        ("NWRA NEAR/1 dam", "NWRA says the dam is safe", False),
        ('"Linhe dam" NEAR/3 rumour*', "rumours about the Linhe dam spread", True),
        ("國家水資源管理局", "国家水资源管理局通报", True),  # Traditional query, Simplified text
    ],
)
def test_queries(query: str, text: str, expected: bool) -> None:
    assert hit(query, text) is expected


def test_fields() -> None:
    assert hit("site:weibo.com AND 水管局", "水管局", url="https://m.weibo.com/status/1")
    assert not hit("site:weibo.com AND 水管局", "水管局", url="https://notweibo.com/x")
    assert hit("author:\"Li Wei\" dam", "the dam", author="Reporter LI WEI")
    assert hit("lang:ar AND سد*", "سدود", lang="ar")
    assert not hit("lang:ar AND سد*", "سدود", lang="en")


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ("水管局 AND", "expected a term after 'AND'", 8),
        ('NWRA AND "dam', "unterminated quote", 10),
        ("(NWRA OR dam", "missing closing parenthesis", 1),
        ("NWRA OR dam)", "unmatched closing parenthesis", 12),
        ("NWRA NEAR dam", "NEAR needs a distance, like NEAR/5", 6),
        ("(a OR b) NEAR/3 c", "NEAR joins two words or phrases", 10),
        ("NOT 演习", "a query needs a term to look for", 1),
        ("site: 水管局", "site: needs a value", 1),
        ("da*m", "a wildcard may only end a word", 3),
        ("OR dam", "expected a term but found 'OR'", 1),
        ("()", "empty parentheses", 2),
        ("", "empty query", 1),
    ],
)
def test_parse_errors_point_at_the_column(query: str, message: str, column: int) -> None:
    with pytest.raises(QuerySyntaxError) as e:
        parse(query)
    assert e.value.message.startswith(message)
    assert e.value.column == column
    caret = str(e.value).splitlines()[-1]
    assert caret.index("^") - 2 == column - 1


def test_a_bad_query_is_refused_when_the_config_is_read() -> None:
    with pytest.raises(ValidationError) as e:
        WatchlistConfig(name="agency", terms=["NWRA", "水管局 AND (溃坝"])
    assert "term 2 '水管局 AND (溃坝': missing closing parenthesis" in str(e.value)


def test_matcher_records_the_leaves_a_query_matched() -> None:
    m = Matcher([WatchlistConfig(name="risk", terms=["(NWRA OR 水管局) AND (溃坝 OR 裂缝)"], exclude=["演习"])])
    got = m.match("水管局回应溃坝传言")
    assert got is not None and got.terms == ["水管局", "溃坝"]
    assert m.match("水管局溃坝演习") is None
