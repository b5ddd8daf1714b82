"""Text, metadata and charset extraction with maintained libraries (no hand-written heuristics
for what a library already knows): trafilatura for an article's main text, title and author;
htmldate for its publication date; charset-normalizer for bodies whose declared charset lies;
w3lib for tags and entities in feed fragments.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from w3lib.encoding import html_body_declared_encoding, resolve_encoding
from w3lib.html import remove_tags, replace_entities

log = logging.getLogger(__name__)

_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/h[1-6]|/tr|/blockquote)\s*>")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_LANG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


def html_to_text(fragment: str | None) -> str:
    """Plain text of a feed's HTML fragment (summary, content:encoded): block ends become line
    breaks, tags go, entities are decoded, whitespace is collapsed."""
    if not fragment:
        return ""
    text = _BLOCK_END.sub("\n", fragment)
    text = replace_entities(remove_tags(text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n", "\n".join(line for line in lines if line)).strip()


def normalise_lang(value: str | None) -> str | None:
    """'zh-CN' -> 'zh', 'en_US' -> 'en', 'AR' -> 'ar'; anything that is not a language tag -> None.
    Posts carry the primary subtag: that is what matching, models and index analysers key on."""
    if not value:
        return None
    value = value.strip()
    if not _LANG.match(value):
        return None
    return re.split(r"[-_]", value)[0].lower()


@dataclass
class Article:
    title: str | None
    text: str
    author: str | None
    date: str | None  # as found (ISO-ish, possibly with offset); resolved by crawlers.dates
    lang: str | None


def extract_article(html: str, url: str) -> Article | None:
    """Main text and metadata of an article page with trafilatura; None when the page has no
    extractable main text (an index page, an error page, a truncated body)."""
    import trafilatura

    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
    )
    if doc is None or not (doc.text or "").strip():
        return None
    return Article(
        title=(doc.title or None),
        text=doc.text.strip(),
        author=(doc.author or None),
        date=find_date(html) or (doc.date or None),
        lang=page_lang(html),
    )


def find_date(html: str) -> str | None:
    """Publication date with htmldate, keeping the time and offset when the page gives them
    (meta tags like article:published_time). Returns the string for `crawlers.dates`."""
    import htmldate

    try:
        return htmldate.find_date(
            html, outputformat="%Y-%m-%dT%H:%M:%S%z", original_date=True, extensive_search=True
        )
    except Exception as e:  # noqa: BLE001 - htmldate raises on some malformed trees; a date is optional
        log.debug("htmldate failed: %s", e)
        return None


_HTML_LANG = re.compile(r"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z0-9_-]+)", re.I)


def page_lang(html: str) -> str | None:
    m = _HTML_LANG.search(html[:4096])
    return normalise_lang(m.group(1)) if m else None


def repair_encoding(body: bytes, declared: str | None) -> str | None:
    """The charset a body is really in, when `declared` cannot decode it; None when `declared`
    is right (the common case, checked first and cheaply).

    GB2312/GBK are read as GB18030 and Big5 as Big5-HKSCS (their supersets, as browsers do).
    Candidates, in order: the charset the HTML itself declares in a meta tag, then
    charset-normalizer's best guess (which scores how plausible the decoded text is, so Big5
    read as GB18030 loses even though both decode without error).
    """
    enc = resolve_encoding(declared or "utf-8") or "utf-8"
    try:
        body.decode(enc)
        return None
    except (UnicodeDecodeError, LookupError):
        pass
    meta = html_body_declared_encoding(body[:4096])
    meta_enc = resolve_encoding(meta) if meta else None
    if meta_enc and meta_enc != enc:
        try:
            body.decode(meta_enc)
            return meta_enc
        except (UnicodeDecodeError, LookupError):
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is None:
        return None
    return resolve_encoding(best.encoding) or best.encoding
