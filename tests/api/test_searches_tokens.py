"""Saved searches (an analyst's own, optionally shared) and token management (admins)."""

from __future__ import annotations

import sqlalchemy as sa

from yuqing.state.schema import audit_log, tokens

from .conftest import World


def test_saved_searches_owned_shared_validated(world: World) -> None:
    analyst, admin = world.client("analyst"), world.client("admin")
    assert world.client("viewer").get("/api/v1/searches").status_code == 403
    body = {"name": "泄漏 负面", "params": {"q": "泄漏", "sentiment": ["negative"], "lang": ["zh"],
                                          "start": "2025-03-08T00:00:00+08:00"}}
    r = analyst.post("/api/v1/searches", json=body)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["owner"] == "test-analyst" and s["params"]["q"] == "泄漏" and s["shared"] is False
    assert analyst.post("/api/v1/searches", json=body).status_code == 409  # same name twice
    # the saved parameters run as a search as they are
    hits = analyst.get("/api/v1/posts", params=s["params"]).json()["hits"]
    assert {h["post"]["id"] for h in hits} == {"p0001", "p0002", "p0007", "p0008"}

    # what GET /posts would refuse is refused here, against the body's own names
    for params, param in (({"q": "泄漏 AND"}, "params.q"), ({"rumor_min": 0.9, "rumor_max": 0.1}, "params.rumor_min"),
                          ({"start": "2025-03-08T00:00:00"}, "params.start"), ({"colour": "red"}, "params.colour")):
        r = analyst.post("/api/v1/searches", json={"name": "bad", "params": params})
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["param"] == param, r.json()

    # private to its owner until shared; only the owner (or an admin) may change it
    assert s["id"] not in [x["id"] for x in world.client("duty_officer").get("/api/v1/searches").json()]
    assert world.client("duty_officer").put(f"/api/v1/searches/{s['id']}", json=body).status_code == 404
    r = analyst.put(f"/api/v1/searches/{s['id']}", json={**body, "shared": True})
    assert r.status_code == 200 and r.json()["shared"] is True
    assert s["id"] in [x["id"] for x in world.client("duty_officer").get("/api/v1/searches").json()]
    assert world.client("duty_officer").delete(f"/api/v1/searches/{s['id']}").status_code == 403
    assert admin.delete(f"/api/v1/searches/{s['id']}").status_code == 204
    assert analyst.delete(f"/api/v1/searches/{s['id']}").status_code == 404
    with world.engine.connect() as c:
        actions = [r.action for r in c.execute(sa.select(audit_log.c.action).where(
            audit_log.c.target == f"search:{s['id']}").order_by(audit_log.c.id))]
    assert actions == ["search.create", "search.update", "search.delete"]


def test_tokens_created_listed_revoked_by_admins(world: World) -> None:
    admin = world.client("admin")
    assert world.client("duty_officer").get("/api/v1/tokens").status_code == 403
    r = admin.post("/api/v1/tokens", json={"name": "dashboard-team", "role": "viewer"})
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["token"].startswith("yq_") and issued["role"] == "viewer"
    assert admin.post("/api/v1/tokens", json={"name": "x", "role": "root"}).status_code == 422

    listed = admin.get("/api/v1/tokens").json()
    assert {"dashboard-team", "test-admin"} <= {t["name"] for t in listed}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    dash = world.client(token=issued["token"])
    assert dash.get("/api/v1/alerts").status_code == 200 and dash.post("/api/v1/alerts/1/acknowledge").status_code == 403

    me = next(t for t in listed if t["name"] == "test-admin")
    assert admin.delete(f"/api/v1/tokens/{me['id']}").status_code == 409  # never lock yourself out
    assert admin.delete(f"/api/v1/tokens/{issued['id']}").status_code == 204
    assert dash.get("/api/v1/alerts").status_code == 401  # at once
    assert admin.delete(f"/api/v1/tokens/{issued['id']}").status_code == 204  # idempotent
    assert admin.delete("/api/v1/tokens/999999").status_code == 404
    assert issued["id"] not in [t["id"] for t in admin.get("/api/v1/tokens").json()]
    assert issued["id"] in [t["id"] for t in admin.get("/api/v1/tokens", params={"include_revoked": True}).json()]
    with world.engine.connect() as c:
        rows = c.execute(sa.select(audit_log.c.actor, audit_log.c.action).where(
            audit_log.c.target == "dashboard-team").order_by(audit_log.c.id)).all()
        stored = c.execute(sa.select(tokens.c.token_hash).where(tokens.c.id == issued["id"])).scalar_one()
    assert [tuple(r) for r in rows] == [("test-admin", "token.create"), ("test-admin", "token.revoke")]
    assert issued["token"] not in stored
