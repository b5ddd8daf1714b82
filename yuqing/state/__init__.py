"""Operational state: inbox, alerts and their history, source cursors and health, tokens, audit.

SQLAlchemy Core on SQLite (embedded default) or PostgreSQL (scaled out), the schema owned by
Alembic migrations in `yuqing/state/migrations`. Stages import only what they use:
`yuqing.state.inbox` for the durable inbox, `yuqing.state.db` for engines and migrations.
"""

from yuqing.state.db import connect, migrate

__all__ = ["connect", "migrate"]
