"""One error shape, no stack traces, health, metrics, the console shell and its headers."""

from __future__ import annotations

import re

import anyio
import httpx
import sqlalchemy as sa

from api.main import create_app
from api.security import GuardedRoute

from .conftest import World


def test_problem_shape_for_404_405_422(world: World) -> None:
    c = world.client("viewer")
    for r, status in (
        (c.get("/api/v1/no-such-thing"), 404),
        (c.delete("/api/v1/alerts"), 405),
        (c.get("/api/v1/posts", params={"size": "many"}), 422),
    ):
        assert r.status_code == status
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["status"] == status and body["title"] and body["detail"]
    assert body["errors"] == [{"param": "size", "location": "query", "message": "expected an integer", "value": "many"}]


def test_unexpected_error_is_a_bare_500_without_trace(world: World) -> None:
    """A route that blows up: the client sees a reference, never the exception or a traceback.
    Built on a second app over the same real store, so the shared app keeps its route table."""
    app = create_app(world.settings, store=world.store, engine=world.engine)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    r = anyio.run(go)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    text = r.text
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert re.search(r"reference [0-9a-f]{12}", r.json()["detail"])


def test_route_missing_from_the_table_is_closed(world: World) -> None:
    """Fail closed: a guarded route nobody added to ACCESS answers 403, even with a valid token."""
    app = create_app(world.settings, store=world.store, engine=world.engine)
    from fastapi import APIRouter

    extra = APIRouter(route_class=GuardedRoute)

    @extra.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"secret": "data"}

    app.include_router(extra)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/api/v1/forgotten", headers={"Authorization": f"Bearer {world.tokens['admin']}"})

    r = anyio.run(go)
    assert r.status_code == 403 and "no access rule" in r.json()["detail"]


def test_health_is_public_and_ready_checks_both_stores(world: World) -> None:
    assert httpx.get(world.url + "/api/v1/health/live").json() == {"status": "ok"}
    r = httpx.get(world.url + "/api/v1/health/ready")
    assert r.status_code == 200 and r.json()["checks"] == {"state": "ok", "index": "ok"}

    broken = sa.create_engine(f"sqlite:///{world.data_dir}/missing-dir/nope/state.db")
    app = create_app(world.settings, store=world.store, engine=broken)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/api/v1/health/ready")

    r = anyio.run(go)
    assert r.status_code == 503
    assert r.json()["checks"]["state"].startswith("error") and r.json()["checks"]["index"] == "ok"


def test_metrics(world: World) -> None:
    world.open_alert(level="red")
    c = world.client("viewer")
    c.get("/api/v1/posts", params={"q": "环保局"})
    r = c.get("/api/v1/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(r'yuqing_http_request_duration_seconds_count\{method="GET",route="/api/v1/posts",status="200"\} \d', text)
    assert re.search(r'yuqing_alerts\{level="red",state="open"\} [1-9]', text)
    assert f"yuqing_posts_indexed {float(len(world.posts))}" in text
    assert "yuqing_inbox_depth" in text


def test_console_shell_headers_and_escaping(world: World) -> None:
    r = httpx.get(world.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    # the agency name (from configuration) is escaped; no inline script at all
    assert "市环保局 &lt;Agency&gt;" in html and "<Agency>" not in html
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))
    for src in re.findall(r'(?:src|href)="(/static/[^"?]+)', html):
        assert httpx.get(world.url + src).status_code == 200, src
    api = httpx.get(world.url + "/api/v1/health/live")
    assert api.headers["cache-control"] == "no-store"


def test_openapi_describes_every_api_route(world: World) -> None:
    spec = httpx.get(world.url + "/api/v1/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/api/v1/posts", "/api/v1/alerts/stream", "/api/v1/alerts/{alert_id}/acknowledge",
            "/api/v1/stats/volume", "/api/v1/stats/terms", "/api/v1/health/ready"} <= paths
