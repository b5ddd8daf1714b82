"""Numeric rumour context of the classify contract: author, media, and the reposts seen so far.

Why hand-made features next to the text encoder: at publish time the author (verified, followers,
account age) and the form of the post (pictures, links) carry signal the text does not, and after
the first hour the *reaction* does: how fast reposts come, how many are replies, and how many
doubt or deny the post ("谣言", "不实", "辟谣", "真的假的"). The model uses exactly what the caller
gives it: no reposts and no count means "publish time", never "nobody reposted".

`FEATURES` is recorded in each model's manifest; the loader refuses a model trained with a
different list, because the head's input would silently mean something else.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

FEATURES = [
    "user_known", "user_verified", "log_followers", "log_friends", "log_messages", "account_age_years",
    "pics", "has_url", "reposts_known", "log_reposts", "log_reposts_per_hour", "reply_share",
    "distinct_user_share", "doubt_share", "denial_share", "question_share",
]

BEIJING = timezone(timedelta(hours=8))
_DOUBT = re.compile(r"真的吗|真的么|真的假的|是真的|求证|求辟谣|靠谱吗|可信吗|有图有真相吗|不会吧|真假|存疑|"
                    r"\bis (this|it) (true|real)\b|\bfake\b|\bhoax\b|\brumou?r\b|حقيقي|إشاعة|شائعة", re.I)
_DENIAL = re.compile(r"谣言|辟谣|不实|造谣|假消息|假新闻|谣传|已辟谣|官方回应|纯属虚构|并非|没有此事|"
                     r"\bdebunk|\bfalse\b|\bnot true\b|كذب|غير صحيح", re.I)
_QUESTION = re.compile(r"[?？]")
_CN_DATE = re.compile(r"^\s*(\d{1,2})月(\d{1,2})日\s*(\d{1,2}):(\d{2})")


def parse_time(v: Any, default_year: int | None = None) -> datetime | None:
    """Aware UTC datetime from unix seconds (or ms), ISO text, Weibo's
    'Mon Mar 11 13:30:22 +0800 2013', Beijing 'YYYY-MM-DD HH:MM:SS' or 'MM月DD日 HH:MM'
    (year taken from `default_year`). Anything else is None, never an exception."""
    if v is None or isinstance(v, bool):
        return None
    try:
        if isinstance(v, (int, float)):
            x = float(v)
            if x > 1e11:  # milliseconds
                x /= 1000.0
            return datetime.fromtimestamp(x, tz=timezone.utc)
        if not isinstance(v, str):
            return None
        s = v.strip()
        if not s:
            return None
        if re.fullmatch(r"\d{9,13}(\.\d+)?", s):
            return parse_time(float(s))
        for fmt in ("%a %b %d %H:%M:%S %z %Y",):
            try:
                return datetime.strptime(s, fmt).astimezone(timezone.utc)
            except ValueError:
                pass
        m = _CN_DATE.match(s)
        if m:
            if default_year is None:
                return None
            mo, d, hh, mm = (int(g) for g in m.groups())
            return datetime(default_year, mo, d, hh, mm, tzinfo=BEIJING).astimezone(timezone.utc)
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if dt.tzinfo is None:  # the CED convention: naive dates are Beijing time
            dt = dt.replace(tzinfo=BEIJING)
        return dt.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        try:
            x = float(v)
            return x if math.isfinite(x) else None
        except ValueError:
            return None
    return None


def _log(v: float | None, scale: float) -> float:
    return 0.0 if v is None or v < 0 else min(math.log1p(v) / scale, 2.0)


def features(
    time: Any = None,
    user: dict[str, Any] | None = None,
    pics: Any = None,
    has_url: Any = None,
    reposts: list[dict[str, Any]] | None = None,
    reposts_count: Any = None,
) -> list[float]:
    """The `FEATURES` vector for one post's context (all zeros when nothing is given)."""
    posted = parse_time(time)
    u = user if isinstance(user, dict) else {}
    out = dict.fromkeys(FEATURES, 0.0)
    if u:
        out["user_known"] = 1.0
        out["user_verified"] = 1.0 if u.get("verified") in (True, 1, "true", "True") else 0.0
        out["log_followers"] = _log(_num(u.get("followers")), 15.0)
        out["log_friends"] = _log(_num(u.get("friends")), 10.0)
        out["log_messages"] = _log(_num(u.get("messages")), 12.0)
        created = parse_time(u.get("time"))
        if created and posted:
            out["account_age_years"] = max(0.0, min((posted - created).days / 365.25, 15.0)) / 15.0
    p = _num(pics)
    out["pics"] = 1.0 if p and p > 0 else 0.0
    out["has_url"] = 1.0 if has_url in (True, 1, "true", "True") else 0.0
    rs = [r for r in reposts if isinstance(r, dict)] if isinstance(reposts, list) else []
    count = _num(reposts_count)
    if count is None and rs:
        count = float(len(rs))
    if count is not None or rs:
        out["reposts_known"] = 1.0
        out["log_reposts"] = _log(count, 8.0)
    if rs:
        year = posted.astimezone(BEIJING).year if posted else None
        times = [t for t in (parse_time(r.get("date"), year) for r in rs) if t is not None]
        if times and posted:
            span_h = max((max(times) - posted).total_seconds() / 3600.0, 1.0 / 6)
            out["log_reposts_per_hour"] = _log(len(rs) / span_h, 8.0)
        n = float(len(rs))
        texts = [str(r.get("text") or "") for r in rs]
        out["reply_share"] = sum(1 for r in rs if r.get("is_reply") in (True, 1)) / n
        uids = {r.get("uid") for r in rs if r.get("uid") is not None}
        out["distinct_user_share"] = len(uids) / n if uids else 0.0
        out["doubt_share"] = sum(1 for t in texts if _DOUBT.search(t)) / n
        out["denial_share"] = sum(1 for t in texts if _DENIAL.search(t)) / n
        out["question_share"] = sum(1 for t in texts if _QUESTION.search(t)) / n
    return [out[k] for k in FEATURES]


def cut_to_window(row: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """The context a caller observes `seconds` after publication (None: publish time).

    Used by training and evaluation to build exactly the two operating points of the contract:
    at publish time there are no reposts and no count; later, the reposts dated within the window
    and a count equal to their number (final totals are never visible at observation time).
    """
    ctx = {k: row.get(k) for k in ("time", "user", "pics", "has_url")}
    if seconds is None:
        return ctx | {"reposts": None, "reposts_count": None}
    posted = parse_time(row.get("time"))
    year = posted.astimezone(BEIJING).year if posted else None
    kept = []
    if posted:
        limit = posted + timedelta(seconds=seconds)
        for r in row.get("reposts") or []:
            t = parse_time(r.get("date"), year) if isinstance(r, dict) else None
            if t is not None and t <= limit:
                kept.append(r)
    return ctx | {"reposts": kept, "reposts_count": len(kept)}
