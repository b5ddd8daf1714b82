"""Fuzz the API from its own OpenAPI description (schemathesis + hypothesis): no input gives a
5xx, and every answer matches the documented status codes, content types and schemas.

Driven from a plain test (schemathesis' pytest plugin does not load under this pytest), one
hypothesis run per operation, over real HTTP to the live server on the real stores."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from yuqing.state.schema import tokens  # noqa: E402

from .conftest import World  # noqa: E402

EXAMPLES_PER_OPERATION = 25


def test_no_server_errors_and_answers_match_the_spec(world: World) -> None:
    schema = schemathesis.openapi.from_url(world.url + "/api/v1/openapi.json")
    # the alert stream never ends; its behaviour is tested in test_alerts.py
    schema = schema.exclude(path="/api/v1/alerts/stream")
    headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 30

    # writes are fuzzed too (tokens, searches, configuration): the world's configuration file is
    # put back afterwards so the tests that follow see the world they expect
    saved_config = world.config_path.read_bytes()
    try:
        _fuzz(operations, headers, checks)
    finally:
        world.config_path.write_bytes(saved_config)
        world.app.state.config.force_check()
        # DELETE /tokens/{token_id} with small ids may have revoked the world's role tokens
        with world.engine.begin() as c:
            c.execute(tokens.update().where(tokens.c.name.like("test-%")).values(revoked_at=None))


def _fuzz(operations, headers, checks) -> None:  # type: ignore[no-untyped-def]
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=checks, timeout=30)

        fuzz()
