"""Bearer tokens, roles and the access table.

Why hashed tokens: the state database is copied into backups and read by several processes;
a leaked copy must not hand out working credentials. Only the SHA-256 of a token is stored
(`tokens.token_hash`); the plaintext is shown once, by `create_token`, and never again.
A 256-bit random token needs no salt or slow hash: there is nothing to brute-force.

Why one table (`ACCESS`) instead of a decorator on each route: a reviewer sees every
endpoint's rule in one place, and `tests/api/test_auth.py` walks the app's routes and fails
when one has no rule here. Routes served through `GuardedRoute` are *closed* when they have
no rule (403), so forgetting the table can never open an endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any, Final

import anyio.to_thread
import sqlalchemy as sa
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from yuqing.state.schema import audit_log, tokens

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "yq_"


class Role(IntEnum):
    """Roles in increasing power; a role may do everything the roles below it may."""

    viewer = 0  # the incident dashboard: read posts, stats, alerts
    analyst = 1  # + export, saved searches, corrections
    duty_officer = 2  # + acknowledge, resolve, notes, draft statements
    admin = 3  # + configuration, tokens


class _Public:
    """Marker for endpoints that need no token (health, the console shell, static files)."""

    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC: Final = _Public()

API = "/api/v1"
# the configuration sections served under /config/<section> (api.settings_file.SECTIONS)
CONFIG_SECTIONS: Final = ("watchlists", "sources", "topics", "alerts", "channels", "oncall")

# (method, path template) -> the least role allowed, or PUBLIC.
# Every route of the app must appear here (tests/api/test_auth.py checks it).
ACCESS: dict[tuple[str, str], Role | _Public] = {
    # health: probes from orchestrators carry no token
    ("GET", f"{API}/health/live"): PUBLIC,
    ("GET", f"{API}/health/ready"): PUBLIC,
    # the API's own description: it holds no data, and schemathesis/clients read it
    ("GET", f"{API}/openapi.json"): PUBLIC,
    ("HEAD", f"{API}/openapi.json"): PUBLIC,
    # the console shell: HTML and scripts with no data; its calls carry the token
    ("GET", "/"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    # who am I (the console shows the role and hides buttons the role may not use)
    ("GET", f"{API}/me"): Role.viewer,
    # posts
    ("GET", f"{API}/posts"): Role.viewer,
    ("GET", f"{API}/posts/export"): Role.analyst,
    ("GET", f"{API}/posts/{{post_id}}"): Role.viewer,
    # raw captures: the evidence file of a post (analysts; it can hold personal data)
    ("GET", f"{API}/posts/{{post_id}}/evidence"): Role.analyst,
    ("GET", f"{API}/posts/{{post_id}}/evidence/{{sha256}}"): Role.analyst,
    # stats
    ("GET", f"{API}/stats/volume"): Role.viewer,
    ("GET", f"{API}/stats/terms"): Role.viewer,
    # alerts
    ("GET", f"{API}/alerts"): Role.viewer,
    ("GET", f"{API}/alerts/stream"): Role.viewer,
    ("GET", f"{API}/alerts/{{alert_id}}"): Role.viewer,
    ("POST", f"{API}/alerts/{{alert_id}}/acknowledge"): Role.duty_officer,
    ("POST", f"{API}/alerts/{{alert_id}}/resolve"): Role.duty_officer,
    ("POST", f"{API}/alerts/{{alert_id}}/notes"): Role.duty_officer,
    # signed one-click links from notifications: the link's own signature is the credential
    # (alerts.links); GET shows what it will do, POST does it (link previews only GET)
    ("GET", f"{API}/alerts/ack"): PUBLIC,
    ("POST", f"{API}/alerts/ack"): PUBLIC,
    ("GET", f"{API}/alerts/{{alert_id}}/drafts"): Role.analyst,
    ("PUT", f"{API}/alerts/{{alert_id}}/draft"): Role.duty_officer,
    ("POST", f"{API}/alerts/{{alert_id}}/claims"): Role.duty_officer,
    ("POST", f"{API}/alerts/{{alert_id}}/published"): Role.duty_officer,
    # corrections of post labels (training data)
    ("POST", f"{API}/posts/{{post_id}}/corrections"): Role.analyst,
    ("GET", f"{API}/corrections"): Role.analyst,
    # configuration: read for analysts (secrets redacted), write for admins
    ("GET", f"{API}/config"): Role.analyst,
    **{("GET", f"{API}/config/{s}"): Role.analyst for s in CONFIG_SECTIONS},
    **{("PUT", f"{API}/config/{s}"): Role.admin for s in CONFIG_SECTIONS},
    # saved searches: an analyst's own (and those others share)
    ("GET", f"{API}/searches"): Role.analyst,
    ("POST", f"{API}/searches"): Role.analyst,
    ("PUT", f"{API}/searches/{{search_id}}"): Role.analyst,
    ("DELETE", f"{API}/searches/{{search_id}}"): Role.analyst,
    # tokens
    ("GET", f"{API}/tokens"): Role.admin,
    ("POST", f"{API}/tokens"): Role.admin,
    ("DELETE", f"{API}/tokens/{{token_id}}"): Role.admin,
    # sources
    ("GET", f"{API}/sources/health"): Role.viewer,
    # metrics: Prometheus scrapes with a bearer token (`authorization:` in scrape_config)
    ("GET", f"{API}/metrics"): Role.viewer,
    # audit trail
    ("GET", f"{API}/audit"): Role.admin,
}


def rule_for(method: str, path: str) -> Role | _Public | None:
    """The rule for one route, None when the table has none (the route is then closed)."""
    return ACCESS.get((method.upper(), path))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (recorded as the actor of every write) and role."""

    token_id: int
    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: sa.Engine, name: str, role: str | Role = Role.viewer, *, actor: str = "system") -> str:
    """Create a token for `name` with `role`; return the plaintext (the only time it exists).

    Raises ValueError for an unknown role or a blank name, so a typo on the command line
    never creates a token nobody can reason about.
    """
    return issue_token(engine, name, role, actor=actor)[1]


def issue_token(engine: sa.Engine, name: str, role: str | Role = Role.viewer, *, actor: str = "system") -> tuple[int, str]:
    """`create_token`, returning (token id, plaintext); `actor` is recorded in the audit log."""
    if not name or not name.strip():
        raise ValueError("a token needs a name (who or what uses it)")
    try:
        r = role if isinstance(role, Role) else Role[str(role)]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(r.name for r in Role)}") from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    if len(name.strip()) > 200:
        raise ValueError("a token name holds at most 200 characters")
    with engine.begin() as c:
        res = c.execute(tokens.insert().values(name=name.strip(), token_hash=hash_token(token), role=r.name, created_at=now))
        c.execute(
            audit_log.insert().values(
                at=now, actor=actor, action="token.create", target=name.strip(), detail=f"role={r.name}"
            )
        )
    return int(res.inserted_primary_key[0]), token


def revoke_token_id(engine: sa.Engine, token_id: int, actor: str) -> bool | None:
    """Revoke one token by id. True: revoked now; False: it was already revoked; None: no such token."""
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        row = c.execute(sa.select(tokens.c.name, tokens.c.revoked_at).where(tokens.c.id == token_id)).first()
        if row is None:
            return None
        if row.revoked_at is not None:
            return False
        c.execute(tokens.update().where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now))
        c.execute(audit_log.insert().values(at=now, actor=actor, action="token.revoke", target=row.name,
                                            detail=f"id={token_id}"))
    return True


def revoke_token(engine: sa.Engine, name: str) -> int:
    """Revoke every live token called `name`; returns how many were revoked."""
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        n = c.execute(
            tokens.update().where(tokens.c.name == name, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        if n:
            c.execute(audit_log.insert().values(at=now, actor="system", action="token.revoke", target=name))
    return int(n or 0)


def authenticate(engine: sa.Engine, token: str) -> Principal | None:
    """The principal for a presented token, or None (unknown, revoked, or a role this code no
    longer knows — never guess a role)."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    with engine.connect() as c:
        row = c.execute(
            sa.select(tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.token_hash).where(
                tokens.c.token_hash == digest, tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    try:
        role = Role[row.role]
    except KeyError:
        log.error("token %r has unknown role %r; refusing it", row.name, row.role)
        return None
    return Principal(token_id=row.id, name=row.name, role=role)


def bearer_token(request: Request) -> str | None:
    """The token from `Authorization: Bearer ...`. Tokens in query strings are not accepted:
    URLs end up in proxy and access logs."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="yuqing"'})


async def authorize(request: Request, method: str, path: str) -> Principal | None:
    """Apply the access table to one request; stores the principal on `request.state`."""
    rule = rule_for(method, path)
    if rule is None:
        # fail closed: a route someone forgot to add to ACCESS is unusable, not open
        log.error("no access rule for %s %s; refusing", method, path)
        raise HTTPException(status_code=403, detail=f"no access rule is defined for {method} {path}")
    if rule is PUBLIC:
        return None
    token = bearer_token(request)
    if token is None:
        raise unauthorized("this endpoint needs a bearer token: send 'Authorization: Bearer <token>'")
    engine: sa.Engine = request.app.state.engine
    principal = await anyio.to_thread.run_sync(authenticate, engine, token)
    if principal is None:
        raise unauthorized("the token is unknown or revoked")
    assert isinstance(rule, Role)
    if not principal.may(rule):
        raise HTTPException(
            status_code=403,
            detail=f"role '{principal.role.name}' may not do this; it needs '{rule.name}' or higher",
        )
    request.state.principal = principal
    return principal


class GuardedRoute(APIRoute):
    """An APIRoute that applies `ACCESS` before anything else runs — before the body is read
    or parameters validated, so an anonymous caller learns nothing about the endpoint."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        methods = sorted(self.methods or {"GET"})
        path = self.path_format

        async def guarded(request: Request) -> Response:
            await authorize(request, request.method if request.method in methods else methods[0], path)
            return await handler(request)

        return guarded


def audit(engine: sa.Engine, actor: str, action: str, target: str | None = None, detail: str | None = None) -> None:
    """Record one write in the audit log (who, what, on what, when)."""
    with engine.begin() as c:
        c.execute(
            audit_log.insert().values(
                at=datetime.now(timezone.utc), actor=actor, action=action, target=target, detail=detail
            )
        )
