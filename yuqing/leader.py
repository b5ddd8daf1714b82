"""A single-leader lease in the state database.

APScheduler 3 does not coordinate several schedulers sharing one job store: two scheduler
processes would both run every job. Scaled out, every scheduler process competes for this lease
and only the holder runs jobs; the others stand by and take over within one lease period when
the holder dies. It is one conditional UPSERT, so it works the same on SQLite and PostgreSQL
(see docs/decisions.md, "exactly-once scheduling").
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from yuqing.state.schema import leases


class Lease:
    def __init__(self, engine: Engine, name: str, holder: str, ttl: timedelta) -> None:
        self.engine, self.name, self.holder, self.ttl = engine, name, holder, ttl

    def acquire(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; True when this holder has it until now + ttl."""
        now = now or datetime.now(timezone.utc)
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(leases).values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": self.holder, "expires_at": now + self.ttl},
            where=sa.or_(leases.c.holder == self.holder, leases.c.expires_at < now),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            holder = conn.execute(sa.select(leases.c.holder).where(leases.c.name == self.name)).scalar()
        return holder == self.holder

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == self.name, leases.c.holder == self.holder))
