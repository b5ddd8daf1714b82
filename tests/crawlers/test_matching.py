"""Watchlist matching: language-aware folding, word edges for Latin terms, excludes, priority."""

from __future__ import annotations

from crawlers.matching import Matcher
from yuqing.config import WatchlistConfig


def matcher(*lists: dict) -> Matcher:
    return Matcher([WatchlistConfig(**w) for w in lists])


AGENCY = {"name": "agency", "priority": 5, "terms": ["国家水资源管理局", "NWRA", "الهيئة الوطنية للموارد المائية",
                                                     "Water Resources Administration"]}


def test_traditional_chinese_text_matches_simplified_term() -> None:
    m = matcher(AGENCY).match("臺灣媒體報導", "國家水資源管理局已作出澄清")
    assert m is not None
    assert m.watchlists == ["agency"] and m.terms == ["国家水资源管理局"]


def test_arabic_variants_match() -> None:
    # tashkeel on ة, and ه written for ة, as people type online
    m = matcher(AGENCY).match("نفت الهيئةُ الوطنيه للموارد المائيه الشائعات")
    assert m is not None and m.terms == ["الهيئة الوطنية للموارد المائية"]
    # with a clitic attached ("and the authority ...")
    assert matcher(AGENCY).match("والهيئة الوطنية للموارد المائية") is not None


def test_latin_terms_need_word_edges_but_not_next_to_cjk() -> None:
    m = matcher(AGENCY)
    assert m.match("The NWRA said") is not None
    assert m.match("nwra, in lower case") is not None
    assert m.match("ＮＷＲＡ full width") is not None  # NFKC
    assert m.match("The NWRAX project") is None
    assert m.match("SNWRA") is None
    assert m.match("据NWRA消息") is not None  # Chinese around a Latin acronym is a boundary
    assert m.match("water resources   administration officials") is not None  # whitespace folded


def test_exclude_vetoes_only_its_watchlist_and_priority_orders() -> None:
    m = matcher(
        {"name": "dam", "priority": 2, "terms": ["Linhe dam"]},
        {"name": "agency", "priority": 9, "terms": ["NWRA"], "exclude": ["NWRA Football Club"]},
    )
    assert m.match("NWRA Football Club wins; Linhe dam is fine").watchlists == ["dam"]  # type: ignore[union-attr]
    got = m.match("NWRA inspects the Linhe dam")
    assert got is not None and got.watchlists == ["agency", "dam"] and got.terms == ["NWRA", "Linhe dam"]
    assert m.match("nothing relevant here") is None
    assert m.match(None, "") is None
