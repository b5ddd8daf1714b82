"""Alert list/get/acknowledge/resolve/notes and the SSE stream with Last-Event-ID resume."""

from __future__ import annotations

import sqlalchemy as sa

from yuqing.state.schema import audit_log

from .conftest import SSEReader, World


def test_list_and_filter(world: World) -> None:
    red, _ = world.open_alert(level="red", title="红色预警 red test")
    blue, _ = world.open_alert(level="blue", title="蓝色 blue test")
    c = world.client("viewer")
    r = c.get("/api/v1/alerts", params={"limit": 500})
    assert r.status_code == 200
    listed = {a["id"]: a for a in r.json()}
    assert {red, blue} <= set(listed)
    assert listed[red]["evidence"] is None and listed[red]["level"] == "red"
    only_red = {a["id"] for a in c.get("/api/v1/alerts", params={"level": "red", "limit": 500}).json()}
    assert red in only_red and blue not in only_red
    both = {a["id"] for a in c.get("/api/v1/alerts", params={"level": ["red", "blue"], "limit": 500}).json()}
    assert {red, blue} <= both
    assert c.get("/api/v1/alerts", params={"level": "purple"}).status_code == 422
    assert c.get("/api/v1/alerts", params={"since": "2025-01-01T00:00:00"}).status_code == 422


def test_get_has_evidence_posts_and_thread(world: World) -> None:
    aid, eid = world.open_alert(post_ids=("p0002", "p0007"))
    r = world.client("viewer").get(f"/api/v1/alerts/{aid}")
    assert r.status_code == 200
    a = r.json()
    assert [p["id"] for p in a["evidence"]["posts"]] == ["p0002", "p0007"]
    assert a["evidence"]["rumor_candidates"][0]["id"] == "p0002"
    assert [e["id"] for e in a["events"]] == [eid]
    assert world.client("viewer").get("/api/v1/alerts/424242").status_code == 404
    assert world.client("viewer").get("/api/v1/alerts/abc").status_code == 422


def test_acknowledge_resolve_note_with_who_and_when(world: World) -> None:
    aid, _ = world.open_alert()
    officer = world.client("duty_officer")
    # a viewer may look but not act
    r = world.client("viewer").post(f"/api/v1/alerts/{aid}/acknowledge")
    assert r.status_code == 403 and "duty_officer" in r.json()["detail"]

    r = officer.post(f"/api/v1/alerts/{aid}/acknowledge")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["state"] == "acknowledged" and a["acknowledged_by"] == "test-duty_officer" and a["acknowledged_at"]
    assert officer.post(f"/api/v1/alerts/{aid}/acknowledge").json()["state"] == "acknowledged"  # double click

    r = officer.post(f"/api/v1/alerts/{aid}/notes", json={"text": "已联系新闻办 called the press office"})
    assert r.status_code == 200 and r.json()["events"][-1]["kind"] == "note"

    r = officer.post(f"/api/v1/alerts/{aid}/resolve", json={})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "reason"
    r = officer.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "   "})
    assert r.status_code == 422
    r = officer.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "statement published"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    r = officer.post(f"/api/v1/alerts/{aid}/acknowledge")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert officer.post("/api/v1/alerts/424242/acknowledge").status_code == 404
    r = officer.post(f"/api/v1/alerts/{aid}/notes", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")

    with world.engine.connect() as c:
        rows = c.execute(
            sa.select(audit_log.c.actor, audit_log.c.action).where(audit_log.c.target == f"alert:{aid}").order_by(audit_log.c.id)
        ).all()
    # exactly one audit row per write (the alert store writes it in the same transaction)
    assert [tuple(r) for r in rows] == [
        ("test-duty_officer", "alert.acknowledge"), ("test-duty_officer", "alert.note"),
        ("test-duty_officer", "alert.resolve"),
    ]


def test_stream_delivers_new_events_and_resumes_from_last_event_id(world: World) -> None:
    c = world.client("viewer")
    with c.stream("GET", "/api/v1/alerts/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        sse = SSEReader(r)
        hello = sse.read(1)[0]
        assert hello["event"] == "hello"
        start = int(hello["id"])
        aid, eid = world.open_alert(level="red", title="实时 live")
        ev = sse.read(1)[0]
    assert (ev["event"], int(ev["id"])) == ("opened", eid) and eid > start
    assert ev["json"]["alert"]["id"] == aid and ev["json"]["alert"]["title"] == "实时 live"
    assert "evidence" not in ev["json"]["alert"]  # feeds get the summary; the view fetches the rest

    # while disconnected: two more changes
    world.client("duty_officer").post(f"/api/v1/alerts/{aid}/acknowledge").raise_for_status()
    aid2, eid2 = world.open_alert(level="yellow", title="离线期间 while away")

    with c.stream("GET", "/api/v1/alerts/stream", headers={"Last-Event-ID": str(eid)}) as r:
        got = SSEReader(r).read(3)
    assert got[0]["event"] == "hello" and int(got[0]["id"]) == eid
    assert [g["event"] for g in got[1:]] == ["acknowledged", "opened"]
    assert got[1]["json"]["alert"]["state"] == "acknowledged" and got[1]["json"]["event"]["actor"] == "test-duty_officer"
    assert int(got[2]["id"]) == eid2 and got[2]["json"]["alert"]["id"] == aid2
    assert int(got[1]["id"]) < eid2

    # the same resume through the query parameter, and a bad header
    with c.stream("GET", "/api/v1/alerts/stream", params={"after": eid}) as r:
        assert [g["event"] for g in SSEReader(r).read(3)[1:]] == ["acknowledged", "opened"]
    r = c.get("/api/v1/alerts/stream", headers={"Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "Last-Event-ID"
