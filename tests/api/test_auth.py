"""Every route has an access rule; without a valid token only the public ones answer; each role
gets exactly what the table grants. Table-driven over the app's own routes, so a new endpoint
without a rule, or with a rule the server does not enforce, fails here."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
import sqlalchemy as sa

from api.main import route_rules
from api.security import ACCESS, PUBLIC, Role, create_token, revoke_token, rule_for
from yuqing.state.schema import audit_log, tokens

from .conftest import World

# values for path parameters when a route is called generically
PATH_VALUES = {"alert_id": "999999", "post_id": "p0000", "path": "console.css", "search_id": "999999",
               "token_id": "999999", "sha256": "0" * 64}


def concrete(path: str) -> str:
    if path == "/static":
        return "/static/console.css"
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES[m.group(1)], path)


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    """One request; streams are opened, their status read, and closed (the alert stream never ends)."""
    body = {"reason": "test", "text": "test"} if method == "POST" else None
    with client.stream(method, concrete(path), json=body) as r:
        if not r.headers.get("content-type", "").startswith("text/event-stream"):
            r.read()
        return r


def test_every_route_has_a_rule(world: World) -> None:
    missing = [(m, p) for m, p in route_rules(world.app) if rule_for(m, p) is None]
    assert not missing, f"routes without an entry in api.security.ACCESS: {missing}"


def test_no_stale_rules(world: World) -> None:
    """A rule for a route that no longer exists is a reviewer's trap: it suggests protection."""
    served = set(route_rules(world.app))
    assert not [k for k in ACCESS if k not in served]


def test_anonymous_and_bad_tokens_get_401_problem(world: World) -> None:
    anon = world.client(role=None)
    bad = world.client(token="yq_not-a-real-token")
    checked = 0
    for method, path in route_rules(world.app):
        rule = rule_for(method, path)
        if method == "HEAD":
            continue
        for client in (anon, bad):
            r = call(client, method, path)
            if rule is PUBLIC:
                # public: never an auth refusal (the ack link answers 422 without its signed token)
                assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.status_code)
            else:
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["status"] == 401
                checked += 1
    assert checked >= 30  # the table really covered the protected routes


def test_wrong_scheme_is_not_a_token(world: World) -> None:
    tok = world.tokens["admin"]
    for header in (f"Basic {tok}", tok, f"Bearer{tok}", "Bearer"):
        r = httpx.get(world.url + "/api/v1/alerts", headers={"Authorization": header})
        assert r.status_code == 401, header
    # tokens in the URL are refused: they would land in access logs
    assert httpx.get(world.url + f"/api/v1/alerts?token={tok}").status_code == 401


@pytest.mark.parametrize("role", [r.name for r in Role])
def test_roles_follow_the_table(world: World, role: str) -> None:
    client = world.client(role)
    granted = Role[role]
    for method, path in route_rules(world.app):
        rule = rule_for(method, path)
        if rule is PUBLIC or method == "HEAD":
            continue
        assert isinstance(rule, Role)
        r = call(client, method, path)
        if granted >= rule:
            # allowed: whatever the answer (404 for the made-up alert id), it is not an auth refusal
            assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text[:200])
        else:
            assert r.status_code == 403, (role, method, path, r.status_code)
            assert rule.name in r.json()["detail"]


def test_token_is_stored_hashed_and_revocable(world: World) -> None:
    token = create_token(world.engine, "temp-analyst", "analyst")
    with world.engine.connect() as c:
        row = c.execute(sa.select(tokens).where(tokens.c.name == "temp-analyst")).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(tuple(row))
        assert c.execute(sa.select(audit_log).where(audit_log.c.action == "token.create",
                                                     audit_log.c.target == "temp-analyst")).first()
    client = world.client(token=token)
    assert client.get("/api/v1/me").json() | {"allowed": None} == {
        "name": "temp-analyst", "role": "analyst", "allowed": None, "timezone": "Asia/Shanghai",
        "agency": world.settings.agency,
    }
    assert revoke_token(world.engine, "temp-analyst") == 1
    assert client.get("/api/v1/me").status_code == 401


def test_create_token_refuses_unknown_roles(world: World) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        create_token(world.engine, "x", "superuser")
    with pytest.raises(ValueError, match="name"):
        create_token(world.engine, "  ", "viewer")


def test_me_lists_what_the_role_may_do(world: World) -> None:
    viewer = world.client("viewer").get("/api/v1/me").json()
    officer = world.client("duty_officer").get("/api/v1/me").json()
    ack = "POST /api/v1/alerts/{alert_id}/acknowledge"
    assert ack not in viewer["allowed"] and ack in officer["allowed"]
    assert "GET /api/v1/audit" not in officer["allowed"]


def test_cors_only_for_configured_origins(world: World) -> None:
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    ok = httpx.options(world.url + "/api/v1/alerts", headers={"Origin": "http://dashboard.example", **pre})
    assert ok.headers.get("access-control-allow-origin") == "http://dashboard.example"
    evil = httpx.options(world.url + "/api/v1/alerts", headers={"Origin": "http://evil.example", **pre})
    assert "access-control-allow-origin" not in evil.headers
