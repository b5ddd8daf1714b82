"""The OpenAPI description carries examples, and every example is something the API really
accepts and answers: each is validated against the operation's own request and response models."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from api.examples import EXAMPLES

from .conftest import World


def _routes(app: Any) -> dict[tuple[str, str], Any]:
    """(method, path template) -> the route (a FastAPI >= 0.16x route context, or the APIRoute)."""
    try:  # the same walk as api.main.route_rules
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    return {(m, r.path_format): r for r in routes if isinstance(getattr(r, "original_route", r), APIRoute)
            for m in r.methods}


def test_examples_are_valid_for_their_operations(world: World) -> None:
    routes = _routes(world.app)
    for key, ex in EXAMPLES.items():
        route = routes[key]
        if "request" in ex:
            body = route.body_field
            assert body is not None, key
            TypeAdapter(body.field_info.annotation).validate_python(ex["request"])
        if "response" in ex:
            assert route.response_model is not None, key
            TypeAdapter(route.response_model).validate_python(ex["response"])


def test_the_served_description_carries_them(world: World) -> None:
    spec = world.client(None).get("/api/v1/openapi.json").json()
    search = spec["paths"]["/api/v1/posts"]["get"]
    assert search["responses"]["200"]["content"]["application/json"]["example"]["hits"][0]["highlights"]
    token = spec["paths"]["/api/v1/tokens"]["post"]
    assert token["requestBody"]["content"]["application/json"]["example"]["role"] == "viewer"
    assert token["responses"]["201"]["content"]["application/json"]["example"]["token"].startswith("yq_")
    # parameters documented with examples too (api.deps.filter_params)
    q = next(p for p in search["parameters"] if p["name"] == "q")
    assert q.get("examples") or q.get("example") or q["schema"].get("examples")
