"""Examples for the OpenAPI description: one per request body and per JSON answer of the
operations other teams call.

Why a table here rather than `examples=` on each model: the answers are built from models
owned by other packages (index, alerts, yuqing.records) that should not carry API
documentation, and one table is easy to check — tests/api/test_openapi_examples.py validates
every example against the operation's own request and response models, so an example can never
drift from what the API really accepts and returns.
"""

from __future__ import annotations

from typing import Any

from api.security import API

_POST = {
    "id": "3f2a9c0d1e4b5a6f7788990011223344",
    "url": "https://weibo.example/u/123/status/456",
    "source": "weibo-search",
    "platform": "weibo",
    "source_tier": "public",
    "author": {"id": "a9c1e0", "name": "江边居民", "followers": 1200, "verified": False},
    "published_at": "2025-03-10T09:12:00+08:00",
    "fetched_at": "2025-03-10T09:15:02+08:00",
    "lang": "zh",
    "title": None,
    "text": "化工厂泄漏后河水发黑，环保局至今沉默",
    "engagement": {"likes": 320, "reposts": 41, "comments": 57},
    "watchlists": ["agency"],
    "cluster_size": 3,
    "classification": {
        "sentiment": "negative",
        "sentiment_scores": {"negative": 0.91, "neutral": 0.07, "positive": 0.02},
        "topics": [{"topic": "pollution", "score": 0.88}],
        "rumor": 0.64,
        "model": "default@3",
    },
}

_ALERT = {
    "id": 42,
    "key": "agency:volume:2025-03-10T09",
    "state": "acknowledged",
    "level": "orange",
    "rule": "volume",
    "watchlist": "agency",
    "title": "橙色预警：化工厂泄漏 negative posts 5.2× baseline",
    "figures": {"observed": 184, "expected": 35.4, "ratio": 5.2, "negative_share": 0.71,
                "explain": "184 posts in 15 min against 35 expected; 71 % negative"},
    "opened_at": "2025-03-10T09:20:00+08:00",
    "updated_at": "2025-03-10T09:31:12+08:00",
    "deadline_at": "2025-03-10T10:20:00+08:00",
    "acknowledged_at": "2025-03-10T09:31:12+08:00",
    "acknowledged_by": "zhang.wei",
}

_SEARCH_PARAMS = {"q": "泄漏 OR leak", "lang": ["zh", "en"], "sentiment": ["negative"],
                  "start": "2025-03-01T00:00:00+08:00", "sort": "time"}

_WATCHLISTS = [{"name": "agency", "terms": ["环保局", "\"environment bureau\"", "المكتب"], "exclude": ["招聘"], "priority": 1}]

# (method, path) -> {"request": body example, "response": answer example}; either may be absent
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", f"{API}/posts"): {"response": {
        "total": 1873,
        "hits": [{"post": _POST, "score": None,
                  "highlights": {"text": ["化工厂<em>泄漏</em>后河水发黑，环保局至今沉默"]}}],
        "next_cursor": "eyJ0IjoxNzQxNTY4NzIwMDAwLCJpZCI6IjNmMmE5YyJ9",
    }},
    ("GET", f"{API}/posts/{{post_id}}"): {"response": {
        "post": _POST, "reply_to": None, "repost_of": None, "cluster_size": 3,
        "corrected": {"sentiment": None, "topics": None, "rumor": False},
        "corrections": [{"id": 7, "post_id": _POST["id"], "field": "rumor", "value": False, "previous": 0.64,
                         "note": "河水发黑经监测属实，非谣言", "actor": "li.na", "at": "2025-03-10T11:02:00+08:00"}],
    }},
    ("POST", f"{API}/posts/{{post_id}}/corrections"): {
        "request": {"sentiment": "negative", "rumor": False, "note": "河水发黑经监测属实，非谣言"},
        "response": [{"id": 8, "post_id": _POST["id"], "field": "sentiment", "value": "negative", "previous": "negative",
                      "note": "河水发黑经监测属实，非谣言", "actor": "li.na", "at": "2025-03-10T11:02:00+08:00"},
                     {"id": 9, "post_id": _POST["id"], "field": "rumor", "value": False, "previous": 0.64,
                      "note": "河水发黑经监测属实，非谣言", "actor": "li.na", "at": "2025-03-10T11:02:00+08:00"}],
    },
    ("GET", f"{API}/stats/volume"): {"response": {
        "interval": "1h", "tz": "Asia/Shanghai", "split_by": "sentiment",
        "start": "2025-03-10T08:00:00+08:00", "end": "2025-03-10T11:00:00+08:00", "total": 411,
        "buckets": [
            {"start": "2025-03-10T08:00:00+08:00", "count": 38, "split": {"negative": 9, "neutral": 25, "positive": 4}},
            {"start": "2025-03-10T09:00:00+08:00", "count": 262, "split": {"negative": 187, "neutral": 70, "positive": 5}},
            {"start": "2025-03-10T10:00:00+08:00", "count": 111, "split": {"negative": 64, "neutral": 44, "positive": 3}},
        ],
    }},
    ("GET", f"{API}/stats/terms"): {"response": {
        "field": "source", "buckets": [{"value": "weibo-search", "count": 1204}, {"value": "city-news", "count": 311}],
    }},
    ("GET", f"{API}/alerts"): {"response": [_ALERT]},
    ("GET", f"{API}/alerts/{{alert_id}}"): {"response": {
        **_ALERT,
        "events": [{"id": 101, "alert_id": 42, "kind": "opened", "at": "2025-03-10T09:20:00+08:00", "actor": None, "payload": {}},
                   {"id": 102, "alert_id": 42, "kind": "acknowledged", "at": "2025-03-10T09:31:12+08:00",
                    "actor": "zhang.wei", "payload": {}}],
    }},
    ("POST", f"{API}/alerts/{{alert_id}}/resolve"): {
        "request": {"reason": "first statement published; volume back to baseline", "false_positive": False, "snooze": None},
        "response": {**_ALERT, "state": "resolved", "resolved_at": "2025-03-10T12:40:00+08:00"},
    },
    ("POST", f"{API}/alerts/{{alert_id}}/claims"): {
        "request": {"post_id": _POST["id"], "verdict": "false"}, "response": _ALERT,
    },
    ("PUT", f"{API}/alerts/{{alert_id}}/draft"): {
        "request": {"lang": "zh", "text": "【情况通报】3月10日上午，我局接到群众反映……", "base_id": 3},
        "response": {"id": 4, "alert_id": 42, "lang": "zh", "text": "【情况通报】3月10日上午，我局接到群众反映……",
                     "actor": "zhang.wei", "at": "2025-03-10T09:50:00+08:00"},
    },
    ("GET", f"{API}/me"): {"response": {
        "name": "incident-dashboard", "role": "viewer", "allowed": [f"GET {API}/alerts", f"GET {API}/posts"],
        "timezone": "Asia/Shanghai", "agency": "市生态环境局",
    }},
    ("PUT", f"{API}/config/watchlists"): {"request": _WATCHLISTS, "response": _WATCHLISTS},
    ("POST", f"{API}/searches"): {
        "request": {"name": "化工厂泄漏 · negative", "params": _SEARCH_PARAMS, "shared": True},
        "response": {"id": 5, "owner": "li.na", "name": "化工厂泄漏 · negative", "params": _SEARCH_PARAMS, "shared": True,
                     "created_at": "2025-03-10T10:00:00+08:00", "updated_at": "2025-03-10T10:00:00+08:00"},
    },
    ("POST", f"{API}/tokens"): {
        "request": {"name": "incident-dashboard", "role": "viewer"},
        "response": {"id": 12, "name": "incident-dashboard", "role": "viewer", "created_at": "2025-03-10T10:00:00+08:00",
                     "revoked_at": None, "token": "yq_2b7Jf0t5Q3m9hQx1Wc8Zk4aPn6Rd0Ls3Ve7Yu1Io5Gh"},
    },
}


def install(spec: dict[str, Any]) -> dict[str, Any]:
    """Put the examples into a generated OpenAPI document (in place; returns it)."""
    for (method, path), ex in EXAMPLES.items():
        op = spec["paths"][path][method.lower()]
        if "request" in ex:
            op["requestBody"]["content"]["application/json"]["example"] = ex["request"]
        if "response" in ex:
            ok = next(code for code in op["responses"] if code.startswith("2"))
            op["responses"][ok].setdefault("content", {}).setdefault("application/json", {})["example"] = ex["response"]
    return spec
