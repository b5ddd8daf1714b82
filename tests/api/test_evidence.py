"""The raw captures of a post: listed for analysts, downloaded as an attachment that the
console's origin never renders (it is hostile public HTML)."""

from __future__ import annotations

from datetime import datetime, timezone

from crawlers.evidence import Capture, record
from tests.api.conftest import World

HOSTILE = b"<html><body><script>alert(1)</script>\xe5\x85\xb0\xe5\xb1\xb1\xe5\xb8\x82\xe6\xb0\xb4\xe5\x8a\xa1\xe5\xb1\x80</body></html>"


def test_captures_are_listed_and_downloaded_safely(world: World) -> None:
    post = world.posts[0]
    cap = Capture(url=post.url or "http://example.cn/p", status=200, content_type="text/html; charset=utf-8",
                  body=HOSTILE, fetched_at=datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))
    record(world.engine, post.source, [(post, [cap])])

    analyst = world.client("analyst")
    listed = analyst.get(f"/api/v1/posts/{post.id}/evidence")
    assert listed.status_code == 200, listed.text
    (info,) = listed.json()
    assert info["sha256"] == cap.sha256 and info["size"] == len(HOSTILE) and info["status"] == 200

    raw = analyst.get(f"/api/v1/posts/{post.id}/evidence/{cap.sha256}")
    assert raw.status_code == 200 and raw.content == HOSTILE
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in raw.headers["content-security-policy"]

    assert world.client("viewer").get(f"/api/v1/posts/{post.id}/evidence").status_code == 403
    missing = analyst.get(f"/api/v1/posts/{post.id}/evidence/{'0' * 64}")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert analyst.get("/api/v1/posts/nope/evidence").status_code == 404
