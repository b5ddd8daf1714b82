"""Charset repair, feed fragments to text, article extraction."""

from __future__ import annotations

from scrapy.http import HtmlResponse, Request

from crawlers.extract import extract_article, html_to_text, normalise_lang, repair_encoding
from crawlers.middlewares import CharsetRepairMiddleware
from tests.crawlers.site import AR_ARTICLE_1, ZH_ARTICLE_1, ZH_ARTICLE_2, ZH_ARTICLE_3_BIG5


def test_repair_encoding_finds_the_real_charset() -> None:
    gbk = ZH_ARTICLE_2.encode("gb18030")
    assert repair_encoding(gbk, "utf-8") == "gb18030"  # declared UTF-8, really GBK
    big5 = ZH_ARTICLE_3_BIG5.encode("big5")
    assert repair_encoding(big5, "utf-8") == "big5hkscs" or repair_encoding(big5, "utf-8") == "big5"
    assert repair_encoding(ZH_ARTICLE_1.encode("gbk"), "gbk") is None  # declared right: nothing to do
    assert repair_encoding(AR_ARTICLE_1.encode("utf-8"), "utf-8") is None


class _Crawler:
    spider = None  # no run context: the middleware still repairs, it just has nobody to tell


def _fix(body: bytes, content_type: str) -> HtmlResponse:
    resp = HtmlResponse("http://example.test/a.html", body=body, headers={"Content-Type": content_type})
    out = CharsetRepairMiddleware(_Crawler()).process_response(Request(resp.url), resp)  # type: ignore[arg-type]
    assert isinstance(out, HtmlResponse)
    return out


def test_charset_middleware_redecodes_misdeclared_and_undeclared_pages() -> None:
    wrong = _fix(ZH_ARTICLE_2.encode("gb18030"), "text/html; charset=utf-8")
    assert "国家水资源管理局的部署" in wrong.text
    # declared nowhere (no header charset; the meta tag removed): detected, not guessed as cp1252
    undeclared = ZH_ARTICLE_1.replace('<meta charset="gbk">', "").encode("gbk")
    got = _fix(undeclared, "text/html")
    assert "国家水资源管理局15日晚间发布通报" in got.text
    right = _fix(ZH_ARTICLE_3_BIG5.encode("big5"), "text/html; charset=big5")
    assert "國家水資源管理局" in right.text


def test_html_to_text_keeps_paragraphs_and_decodes_entities() -> None:
    assert html_to_text("<p>One &amp; two</p><p>Three<br/>four</p>") == "One & two\nThree\nfour"
    assert html_to_text(None) == ""
    assert html_to_text("  plain   text  ") == "plain text"


def test_normalise_lang() -> None:
    assert normalise_lang("zh-CN") == "zh"
    assert normalise_lang("en_US") == "en"
    assert normalise_lang("AR") == "ar"
    assert normalise_lang("not a tag!") is None
    assert normalise_lang(None) is None


def test_extract_article_with_trafilatura() -> None:
    art = extract_article(AR_ARTICLE_1, "http://example.test/ar/1.html")
    assert art is not None
    assert "سد لينخه" in art.text and "All rights reserved" not in art.text  # boilerplate left out
    assert art.lang == "ar"
    assert art.date is not None and art.date.startswith("2024-12-15T10:30:00")
    assert extract_article("<html><body></body></html>", "http://example.test/") is None
