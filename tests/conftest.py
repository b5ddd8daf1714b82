"""Fixtures every test package may use.

`state_url` is parametrised over SQLite and PostgreSQL: each PostgreSQL case gets a database of
its own (created and dropped here), and skips with the reason when no server is reachable. CI
sets YUQING_REQUIRE_POSTGRES=auto: when a server *is* reachable, a skipped PostgreSQL case fails
the run, so a broken connection can never pass as "skipped".
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("YUQING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_pg_skips: list[str] = []


def _pg_reachable() -> str | None:
    """None when reachable, else why not."""
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable", with its reason
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(e).__name__}: {str(e).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_unreachable() -> str | None:
    return _pg_reachable()


@pytest.fixture
def pg_url(pg_unreachable: str | None, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    if pg_unreachable:
        _pg_skips.append(request.node.nodeid)
        pytest.skip(pg_unreachable)
    name = f"yuqing_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from sqlalchemy.pool import NullPool  # noqa: F401

        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated-nothing-yet state database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def state_engine(state_url: str) -> Iterator[sa.Engine]:
    from yuqing.state.db import connect, migrate

    engine = connect(state_url)
    migrate(engine)
    yield engine
    engine.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("YUQING_REQUIRE_POSTGRES") != "auto" or not _pg_skips:
        return
    if _pg_reachable() is None:
        session.config.get_terminal_writer().line(
            f"FAIL: PostgreSQL is reachable but {len(_pg_skips)} PostgreSQL case(s) were skipped: {_pg_skips[:5]}",
            red=True,
        )
        session.exitstatus = 1
