"""Disappearance of posts that have no page of their own, and soft 404s.

A forum reply, a Discourse post, a Telegram message or a JSON-API post is only ever seen in a
*container*: a thread page, a topic, a channel preview, an API response. Such a post cannot be
re-requested on its own; it is gone when a later, successful fetch of its container no longer
lists it **and that fetch provably covers the place where it was** (docs/decisions.md,
"Disappearance without a page of its own"). A listing is a window: a channel preview shows the
newest ~20 messages, a search API a page of results, a thread page the posts from an offset;
a post that merely scrolled out of the window must never be called deleted. So:

- `Listing` is what one fetch of a container showed: the document ids of *every* post on it
  (matched or not), in page order, and how its coverage is known:
  - `complete`: the container lists every post it has (Discourse's `post_stream.stream`):
    a known post missing from it is gone;
  - `keys`: a per-post order that is stable across fetches (Telegram message ids): a known
    post whose key lies strictly between the smallest and the largest key shown is gone if it is
    not shown;
  - neither (a forum thread page, an API timeline declared `listing_ordered`): a known post
    missing now, with a post that preceded it *and* a post that followed it last time both
    still there, is gone (posts do not change places in a thread or a timeline; a window that
    moved loses its ends, not its middle).
  An empty listing says nothing (a broken or emptied page is not fifty deletions). A known
  container that is gone as a whole (404/410, a redirect to the home or listing page, a JSON
  error body) takes every post of its last listing with it (`SourceSpider.container_gone`).
- `vanished()` applies that rule to the listing stored in the source cursor (`listings`) by the
  previous run; `remember()` returns what to store now.
- Platform markers say it outright, whatever the window: a Discourse post with `deleted_at` /
  `user_deleted`, a JSON item whose `fields.deleted` mapping is true (Reddit's
  `removed_by_category`, Weibo's `deleted`), a JSON error body on a re-check.
- `soft_gone_reason()` recognises a 200 answer that means "gone" on a re-check of a post's own
  URL, without configuration: a redirect to the site's home or listing page, a JSON error body
  (Mastodon `{"error": "Record not found"}`, Weibo `{"ok": 0, "msg": "...已删除"}`, a deleted
  Discourse post), or a page whose extracted main text no longer holds the post's text
  (`text_replaced`). `options.gone_text` (a regex) stays the explicit override.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

LISTINGS = "listings"  # the cursor key
KEYED_MAX = 2000  # known posts kept per keyed container (a channel)


@dataclass(frozen=True)
class Listing:
    """One successful fetch of a container (see the module docstring)."""

    container: str  # a stable name: the page's canonical URL, or `telegram:<channel>`
    ids: Sequence[str]  # doc ids of every post shown, in page order
    keys: Sequence[int] | None = None  # stable order keys, parallel to `ids`
    complete: bool = False
    url: str | None = None  # what to request to look again (neighbour-rule pages only)


def vanished(before: dict[str, Any] | None, now: Listing) -> list[str]:
    """Doc ids the previous fetch showed that `now` provably should show and does not."""
    if not before or not now.ids:
        return []
    present = set(now.ids)
    if now.keys is not None:
        known: dict[str, int] = {d: int(k) for d, k in (before.get("keys") or {}).items()}
        lo, hi = min(now.keys), max(now.keys)
        return sorted((d for d, k in known.items() if d not in present and lo < k < hi), key=known.__getitem__)
    old: list[str] = list(before.get("ids") or [])
    if now.complete:
        return [d for d in old if d not in present]
    kept = [i for i, d in enumerate(old) if d in present]
    if not kept:
        return []  # nothing in common: another window, not a deletion
    return [d for i, d in enumerate(old) if kept[0] < i < kept[-1] and d not in present]


def remember(before: dict[str, Any] | None, now: Listing, at: datetime, gone: Sequence[str] = ()) -> dict[str, Any]:
    """The cursor entry for a container after `now` was seen (posts found gone are forgotten)."""
    stamp = at.isoformat(timespec="seconds")
    # a page's entry ages out `recheck_days` after it was first seen (as its posts' re-checks
    # do); a keyed container (a channel) lives while it is read, its known ids capped instead
    first = stamp if now.keys is not None else ((before or {}).get("first") or stamp)
    entry: dict[str, Any] = {"at": stamp, "first": first}
    if now.keys is not None:
        keys = {d: int(k) for d, k in ((before or {}).get("keys") or {}).items() if d not in gone}
        keys.update({d: int(k) for d, k in zip(now.ids, now.keys)})
        if len(keys) > KEYED_MAX:
            keys = dict(sorted(keys.items(), key=lambda kv: kv[1])[-KEYED_MAX:])
        entry["keys"] = keys
    else:
        entry["ids"] = list(now.ids)
    if now.url:
        entry["url"] = now.url
    return entry


def prune(listings: dict[str, Any], now: datetime, days: float) -> dict[str, Any]:
    """Containers first seen within `days` (older posts are no longer re-checked either)."""
    cutoff = (now - timedelta(days=days)).isoformat(timespec="seconds")
    return {k: v for k, v in listings.items() if isinstance(v, dict) and str(v.get("first", "")) >= cutoff}


def due_containers(listings: dict[str, Any], now: datetime, after_hours: float, limit: int) -> list[tuple[str, str]]:
    """(container, url) of neighbour-rule pages not looked at for `after_hours`, oldest first:
    pages a normal run does not fetch again (a forum thread's earlier pages)."""
    if limit <= 0:
        return []
    before = (now - timedelta(hours=after_hours)).isoformat(timespec="seconds")
    due = [(v["at"], k, v["url"]) for k, v in listings.items()
           if isinstance(v, dict) and v.get("url") and v.get("ids") and str(v.get("at", "")) <= before]
    return [(k, url) for _, k, url in sorted(due)[:limit]]


# -- platform markers -----------------------------------------------------------------------
_GONE_WORDS = re.compile(
    r"not\s*(?:be\s*)?found|deleted|removed|does not exist|no longer (?:exists|available)|"
    r"删除|刪除|不存在|已被屏蔽|无法查看|無法查看",
    re.I,
)


def json_gone_reason(data: Any) -> str | None:
    """A JSON body that says the post is gone (platforms answer some of these with 200)."""
    if not isinstance(data, dict):
        return None
    err = data.get("error") or data.get("errors")
    if isinstance(err, list):  # Discourse: {"errors": ["The requested URL or resource could not be found."]}
        err = " ".join(str(e) for e in err if isinstance(e, str))
    if isinstance(err, str) and _GONE_WORDS.search(err):  # Mastodon: {"error": "Record not found"}
        return f"the API says: {err}"
    if data.get("error_type") == "not_found":  # Discourse, whatever the message's language
        return "the API says: not_found"
    if data.get("ok") in (0, "0", False):  # Weibo: {"ok": 0, "msg": "抱歉，此微博已被作者删除"}
        msg = str(data.get("msg") or data.get("message") or "")
        if _GONE_WORDS.search(msg):
            return f"the API says: {msg}"
    if post_deleted(data):  # a Discourse post's JSON
        return "the platform marks the post deleted"
    return None


def post_deleted(post: dict[str, Any]) -> bool:
    """Discourse's own markers on a post: deleted by staff, or withdrawn by its author."""
    return bool(post.get("deleted_at") or post.get("user_deleted"))


def redirected_away(requested: str, final: str, source_url: str) -> bool:
    """The post's URL now redirects to the site's home page, the source's listing page, or a
    section above the post: how many sites answer for a deleted article."""
    if not final or final == requested:
        return False
    a, b = urlsplit(requested), urlsplit(final)
    if a.netloc != b.netloc and b.netloc.removeprefix("www.") != a.netloc.removeprefix("www."):
        return False  # another site (a login wall, a CDN): not evidence either way
    path = b.path.rstrip("/")
    if path in ("", "/index.html", "/index.htm", "/index.php", "/default.aspx") and not b.query:
        return True
    src = urlsplit(source_url)
    if b.netloc == src.netloc and path == src.path.rstrip("/") and b.query == src.query:
        return True
    return bool(path) and a.path.startswith(path + "/") and b.path != a.path


_SHINGLE = 4


def _shingles(text: str) -> set[str]:
    t = re.sub(r"\s+", " ", text).strip().lower()
    return {t[i:i + _SHINGLE] for i in range(max(len(t) - _SHINGLE + 1, 1))} if t else set()


def text_replaced(old: str | None, new: str | None, keep: float = 0.3) -> bool:
    """The page's main text no longer holds the post: empty, or less than `keep` of the old
    text's character 4-grams are still there (an edit keeps most of them; a "this article was
    removed" notice or the site's boilerplate keeps almost none)."""
    if not (new or "").strip():
        return True
    if not old:
        return False
    a = _shingles(old)
    return bool(a) and len(a & _shingles(new or "")) / len(a) < keep


def json_body(body: bytes, content_type: str | None) -> Any:
    """The decoded JSON of a response that is JSON, else None."""
    head = body.lstrip()[:1]
    if "json" not in (content_type or "") and head not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
