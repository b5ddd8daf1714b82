"""The migrations create exactly the tables the code uses, on both backends; the leader lease
gives the scheduler role to one process at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from yuqing.leader import Lease
from yuqing.state.db import migrate
from yuqing.state.schema import metadata

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def test_migrations_match_the_schema_and_are_idempotent(state_engine: sa.Engine) -> None:
    migrate(state_engine)  # second run: nothing to do, no error
    with state_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_times_come_back_aware_utc(state_engine: sa.Engine) -> None:
    from yuqing.state.schema import leases

    with state_engine.begin() as c:
        c.execute(leases.insert().values(name="x", holder="h", expires_at=T0.astimezone(timezone(timedelta(hours=8)))))
        got = c.execute(sa.select(leases.c.expires_at)).scalar()
    assert got == T0 and got.tzinfo is not None


def test_one_leader_at_a_time_and_takeover_after_expiry(state_engine: sa.Engine) -> None:
    ttl = timedelta(seconds=30)
    a, b = Lease(state_engine, "scheduler", "a", ttl), Lease(state_engine, "scheduler", "b", ttl)
    assert a.acquire(T0) is True
    assert b.acquire(T0 + timedelta(seconds=10)) is False
    assert a.acquire(T0 + timedelta(seconds=20)) is True  # renewal
    assert b.acquire(T0 + timedelta(seconds=40)) is False  # a renewed until 50
    assert b.acquire(T0 + timedelta(seconds=51)) is True  # a died: b takes over
    assert a.acquire(T0 + timedelta(seconds=52)) is False
    b.release()
    assert a.acquire(T0 + timedelta(seconds=53)) is True
