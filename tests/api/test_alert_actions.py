"""The alert actions added for issue 7: signed acknowledge links, draft statements (generated,
edited, saved with who/when, no lost update), claim verdicts, false positive / snooze, and
"statement published"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from alerts.links import ack_key, sign_ack
from alerts.store import AlertStore
from yuqing.state.schema import audit_log

from .conftest import World


def _audit(world: World, aid: int) -> list[tuple[str, str]]:
    with world.engine.connect() as c:
        rows = c.execute(sa.select(audit_log.c.actor, audit_log.c.action)
                         .where(audit_log.c.target == f"alert:{aid}").order_by(audit_log.c.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_ack_link_shows_a_page_then_acknowledges_on_post(world: World) -> None:
    aid, _ = world.open_alert(level="red", title="链接确认 <script>x()</script>")
    key = ack_key(world.settings)
    token = sign_ack(key, aid, "wecom", datetime.now(timezone.utc) + timedelta(hours=1))
    anon = world.client(role=None)

    # opening the link (or a chat app's preview bot fetching it) changes nothing
    r = anon.get("/api/v1/alerts/ack", params={"token": token})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;x()&lt;/script&gt;" in r.text and "<script>x()" not in r.text
    assert 'id="ack-confirm"' in r.text and "script-src 'self'" in r.headers["content-security-policy"]
    assert AlertStore(world.engine).get(aid)["state"] == "open"  # type: ignore[index]

    r = anon.post("/api/v1/alerts/ack", params={"token": token})
    assert r.status_code == 200 and 'id="ack-result"' in r.text and "link:wecom" in r.text
    a = AlertStore(world.engine).get(aid)
    assert a is not None and a["state"] == "acknowledged" and a["acknowledged_by"] == "link:wecom"
    assert _audit(world, aid) == [("link:wecom", "alert.acknowledge")]
    # pressing twice is harmless; the page says who acknowledged
    assert anon.post("/api/v1/alerts/ack", params={"token": token}).status_code == 200
    assert "Already acknowledged by link:wecom" in anon.get("/api/v1/alerts/ack", params={"token": token}).text


def test_ack_link_refuses_expired_forged_and_altered_tokens(world: World) -> None:
    aid, _ = world.open_alert()
    other, _ = world.open_alert()
    key = ack_key(world.settings)
    anon = world.client(role=None)
    expired = sign_ack(key, aid, "email", datetime.now(timezone.utc) - timedelta(seconds=1))
    forged = sign_ack(b"not-the-service-key-0123456789", aid, "email", datetime.now(timezone.utc) + timedelta(hours=1))
    good = sign_ack(key, aid, "email", datetime.now(timezone.utc) + timedelta(hours=1))
    altered = sign_ack(key, other, "email", datetime.now(timezone.utc) + timedelta(hours=1)).split(".")[0] + "." + good.split(".")[1]
    for bad, why in ((expired, "expired"), (forged, "signature"), (altered, "signature"), ("x" * 20, "malformed")):
        for method in ("GET", "POST"):
            r = anon.request(method, "/api/v1/alerts/ack", params={"token": bad})
            assert r.status_code == 403, (why, method, r.text)
            assert r.headers["content-type"].startswith("application/problem+json") and why in r.json()["detail"]
    assert AlertStore(world.engine).get(aid)["state"] == "open"  # type: ignore[index]
    assert AlertStore(world.engine).get(other)["state"] == "open"  # type: ignore[index]
    # a valid link to a resolved alert: 409, nothing changes
    AlertStore(world.engine).resolve(aid, "test", "done")
    assert anon.post("/api/v1/alerts/ack", params={"token": good}).status_code == 409


def test_drafts_generated_edited_saved_without_lost_updates(world: World) -> None:
    aid, _ = world.open_alert(post_ids=("p0002", "p0001"))
    officer, viewer, analyst = world.client("duty_officer"), world.client("viewer"), world.client("analyst")
    assert viewer.get(f"/api/v1/alerts/{aid}/drafts").status_code == 403
    r = analyst.get(f"/api/v1/alerts/{aid}/drafts")
    assert r.status_code == 200, r.text
    d = r.json()["drafts"]
    assert [x["lang"] for x in d] == ["zh"] and d[0]["saved"] is None and d[0]["versions"] == 0
    assert "市环保局 <Agency>" in d[0]["generated"]  # the configured agency, as text
    assert any(f["source"] == "config.agency" for f in d[0]["facts"])
    assert analyst.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "zh", "text": "x"}).status_code == 403

    text1 = d[0]["generated"].replace("[", "（").replace("]", "）") + "\n市应急管理局已介入。"
    r = officer.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "zh", "text": text1, "base_id": None})
    assert r.status_code == 200, r.text
    v1 = r.json()
    assert v1["actor"] == "test-duty_officer" and v1["text"] == text1 and v1["at"]
    # a second officer who also started from the generated draft must not overwrite the first
    r = world.client("admin").put(f"/api/v1/alerts/{aid}/draft", json={"lang": "zh", "text": "覆盖", "base_id": None})
    assert r.status_code == 409 and "test-duty_officer" in r.json()["detail"]
    r = officer.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "zh", "text": text1 + "\n下次更新：一小时内。", "base_id": v1["id"]})
    assert r.status_code == 200
    v2 = r.json()
    # an Arabic draft next to it; blank or unknown languages are refused
    assert officer.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "ar", "text": "بيان أولي"}).status_code == 200
    assert officer.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "zh", "text": "  ", "base_id": v2["id"]}).status_code == 422
    assert officer.put(f"/api/v1/alerts/{aid}/draft", json={"lang": "fr", "text": "x"}).status_code == 422
    assert officer.put("/api/v1/alerts/424242/draft", json={"lang": "zh", "text": "x"}).status_code == 404

    d = {x["lang"]: x for x in analyst.get(f"/api/v1/alerts/{aid}/drafts").json()["drafts"]}
    assert set(d) == {"zh", "ar"}
    assert d["zh"]["saved"]["id"] == v2["id"] and d["zh"]["versions"] == 2 and d["zh"]["saved"]["text"].endswith("一小时内。")
    assert d["ar"]["direction"] == "rtl" and d["ar"]["saved"]["text"] == "بيان أولي"
    assert [a for _, a in _audit(world, aid)] == ["alert.draft"] * 3


def test_claim_verdict_reaches_the_draft(world: World) -> None:
    aid, _ = world.open_alert(post_ids=("p0002", "p0001"))
    officer = world.client("duty_officer")
    before = officer.get(f"/api/v1/alerts/{aid}/drafts").json()["drafts"][0]
    assert not any(f["source"].startswith("events[") for f in before["facts"])
    r = officer.post(f"/api/v1/alerts/{aid}/claims", json={"post_id": "p0002", "verdict": "false"})
    assert r.status_code == 200, r.text
    ev = r.json()["events"][-1]
    assert ev["kind"] == "claim" and ev["actor"] == "test-duty_officer" and ev["payload"]["verdict"] == "false"
    after = officer.get(f"/api/v1/alerts/{aid}/drafts").json()["drafts"][0]
    assert any(f["source"].startswith("events[") for f in after["facts"])  # the officer's verdict, cited
    # only posts of the evidence; only the three verdicts
    r = officer.post(f"/api/v1/alerts/{aid}/claims", json={"post_id": "p0020", "verdict": "false"})
    assert r.status_code == 422 and "not in the evidence" in r.json()["detail"]
    assert officer.post(f"/api/v1/alerts/{aid}/claims", json={"post_id": "p0002", "verdict": "fake"}).status_code == 422
    assert world.client("analyst").post(f"/api/v1/alerts/{aid}/claims",
                                        json={"post_id": "p0002", "verdict": "true"}).status_code == 403


def test_resolve_false_positive_and_snooze(world: World) -> None:
    aid, _ = world.open_alert()
    officer = world.client("duty_officer")
    assert officer.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "x", "snooze": "40d"}).status_code == 422
    assert officer.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "x", "snooze": "soon"}).status_code == 422
    r = officer.post(f"/api/v1/alerts/{aid}/resolve",
                     json={"reason": "已知旧闻 known story", "false_positive": True, "snooze": "2d"})
    assert r.status_code == 200, r.text
    ev = r.json()["events"][-1]
    assert ev["kind"] == "resolved" and ev["payload"]["false_positive"] is True
    until = datetime.fromisoformat(ev["payload"]["snooze_until"].replace("Z", "+00:00"))
    assert timedelta(days=2) - timedelta(minutes=1) < until - datetime.now(timezone.utc) <= timedelta(days=2)


def test_statement_published_with_its_link(world: World) -> None:
    aid, _ = world.open_alert(level="red")
    officer = world.client("duty_officer")
    assert officer.post(f"/api/v1/alerts/{aid}/published", json={"url": "javascript:alert(1)"}).status_code == 422
    future = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    assert officer.post(f"/api/v1/alerts/{aid}/published", json={"url": "https://gov.example/s/1", "at": future}).status_code == 422
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    r = officer.post(f"/api/v1/alerts/{aid}/published", json={"url": "https://gov.example/s/1", "at": at.isoformat()})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["events"][-1]["kind"] == "published" and a["events"][-1]["actor"] == "test-duty_officer"
    assert a["events"][-1]["payload"]["url"] == "https://gov.example/s/1"
    assert a["published_by"] == "test-duty_officer" and a["statement_url"] == "https://gov.example/s/1"
    assert a["deadline_at"] is None and a["next_update_at"]  # the first-statement clock stops, the update clock starts
    assert ("test-duty_officer", "alert.publish") in _audit(world, aid)
    assert officer.post("/api/v1/alerts/424242/published", json={"url": "https://gov.example/s/1"}).status_code == 404
