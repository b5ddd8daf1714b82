"""The HTTP API and the duty-officer console.

`create_app(settings, store=..., engine=...)` builds the whole app from what it is given: the
index store and the state engine are injected (the caller opens and closes them), so the same
factory serves `yuqing run`, `yuqing demo`, the tests and the benchmark without globals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from alerts.store import AlertStore
from api import errors, examples
from api.metrics import build_registry
from api.middleware import SecurityHeaders
from api.routes import alerts, config, console, health, meta, posts, searches, stats
from api.security import API as API_PREFIX
from api.settings_file import ConfigFile
from index.base import Store
from yuqing.config import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """\
Search, statistics and the alert feed of Yuqing (舆情), a public-opinion monitoring service.

Every endpoint except `/health/*` needs `Authorization: Bearer <token>`. Roles, from least to
most: `viewer` (read), `analyst` (+ export, corrections, saved searches, reading configuration and
drafts), `duty_officer` (+ acknowledge / resolve / notes / claims / draft statements),
`admin` (+ audit log, writing configuration, tokens). Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: Settings,
    *,
    store: Store,
    engine: sa.Engine,
    alert_store: AlertStore | None = None,
    config_path: str | os.PathLike[str] | None = None,
    config_check_seconds: float = 1.0,
    sse_poll_seconds: float = 1.0,
    sse_ping_seconds: float = 15.0,
) -> FastAPI:
    """Build the API.

    `store`: the index (`index.open_store(settings)`); `engine`: the migrated state database
    (`yuqing.state.db.connect` + `migrate`). `alert_store` defaults to `alerts.store.AlertStore(engine)`;
    the SSE knobs exist so tests need not wait a second per poll. `config_path`: the YAML file
    `settings` came from; with it the configuration endpoints can write, and a change to the file
    (by the API, another replica or an editor) is applied within `config_check_seconds`.
    Without it the configuration is read-only over HTTP.
    """
    if alert_store is None:
        alert_store = AlertStore(engine, config=settings.alerts)

    app = FastAPI(
        title="Yuqing API",
        version="1",
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; deployments may be offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.config = ConfigFile(settings, config_path, check_every=config_check_seconds)
    app.state.store = store
    app.state.engine = engine
    app.state.alerts = alert_store
    app.state.sse_poll_seconds = sse_poll_seconds
    app.state.sse_ping_seconds = sse_ping_seconds
    app.state.export_limiter = posts.ExportLimiter()
    registry, latency = build_registry(engine, store)
    app.state.metrics_registry = registry

    errors.install(app)

    # routers carry their full path (/api/v1/...) so every route knows the path its access
    # rule is keyed by, whatever the FastAPI version does with include prefixes
    for module in (health, meta, posts, stats, alerts, config, searches, console):
        app.include_router(module.router)
    app.include_router(posts.corrections_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if settings.api.cors_origins:
        # only configured origins (the other team's dashboard); the console is same-origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "If-Match"],
            expose_headers=["Content-Disposition", "ETag"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, latency=latency, api_prefix=API_PREFIX)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # generated once (FastAPI caches it on the app), then the examples table is added
        if app.openapi_schema is None:
            app.openapi_schema = examples.install(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def route_rules(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, the console's static mount as
    ("GET", "/static"). Used by the access-table test so a new route without a rule fails."""
    try:  # FastAPI >= 0.16x keeps included routers lazily; this walks them
        from fastapi.routing import iter_route_contexts

        contexts: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # older FastAPI copies the routes into app.routes
        contexts = list(app.routes)
    out: set[tuple[str, str]] = set()
    for r in contexts:
        path = getattr(r, "path_format", None) or getattr(r, "path", "")
        methods = getattr(r, "methods", None)
        if methods is None:  # a Mount: StaticFiles answers GET and HEAD
            out.add(("GET", getattr(r, "path", path)))
            continue
        for m in methods:
            out.add((m, path))
    return sorted(out)
