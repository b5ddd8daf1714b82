"""Response headers every answer carries, and the request-latency metric.

Pure ASGI (not `BaseHTTPMiddleware`): it must not buffer the SSE stream or the CSV export, and
it must see the matched route template *after* routing so metrics are labelled by
`/api/v1/alerts/{alert_id}` rather than by every alert id ever requested.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Why this policy: post text is written by the public and may carry markup. The console never
# inserts it as HTML (textContent only); the policy is the second wall — no inline script, no
# inline style attribute from injected markup, no third-party origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
_STATIC_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds CSP and friends to every response; `Cache-Control: no-store` on the API, since its
    answers are behind a token and must not linger in shared caches."""

    def __init__(self, app: ASGIApp, latency: Histogram | None = None, api_prefix: str = "/api/v1") -> None:
        self.app = app
        self.latency = latency
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(k, v) for k, v in _STATIC_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                if path.startswith(self.api_prefix) and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if self.latency is not None:
                route = scope.get("route")
                template = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
                if path.startswith("/static/"):
                    template = "/static"
                self.latency.labels(scope.get("method", "GET"), template, str(status_holder["status"])).observe(
                    time.perf_counter() - started
                )
