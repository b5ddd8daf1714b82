"""Document ids and pseudonymous author ids.

The document id is a hash of the canonical URL (or of platform + platform id when a post has
one), so the same post fetched twice gets the same id and both the inbox and the index reject
the second copy on insert (Media Cloud story-indexer's approach; see docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from w3lib.url import canonicalize_url

# Query parameters that only track the reader; they never change which post a URL names.
_TRACKING = re.compile(r"^(utm_[a-z]+|spm|from|share_token|fbclid|gclid|mc_[a-z]+|ref|ref_src)$")


def canonical_url(url: str) -> str:
    """Canonical form used for identity: w3lib's canonicalisation (sorted query, no fragment),
    scheme and host lower-cased, tracking parameters removed."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)]
    rebuilt = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), ""))
    return canonicalize_url(rebuilt)


def doc_id(*, url: str | None = None, platform: str | None = None, platform_id: str | None = None) -> str:
    """Stable document id. A platform id wins over the URL: one microblog post has many URLs."""
    if platform and platform_id:
        key = f"{platform}:{platform_id}"
    elif url:
        key = canonical_url(url)
    else:
        raise ValueError("a document id needs a URL or a platform and platform id")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def text_hash(text: str) -> str:
    """Hash of the text after NFKC, case folding and whitespace collapsing: identical copies of
    a post (copy-paste campaigns, reposts without comment) share it."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    norm = re.sub(r"\s+", " ", norm).strip()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


def pseudonymise(key: bytes, platform: str, author_id: str | None) -> str | None:
    """Keyed hash (HMAC-SHA256) of a platform user id. Without the key the id cannot be
    reversed or linked to other data sets; with it, the same author always maps to the same id,
    which is all the analysis needs."""
    if not author_id:
        return None
    digest = hmac.new(key, f"{platform}:{author_id}".encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:20]
