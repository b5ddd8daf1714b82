"""Per-source cursor and health figures in the state database (`sources` table).

The cursor (JSON) is what makes a re-crawl incremental:

- `http`: `{url: {"etag": ..., "last_modified": ...}}` for the feed / listing URLs, sent back as
  `If-None-Match` / `If-Modified-Since` so an unchanged source answers 304 with no body;
- `seen`: `{doc_id: "first seen" ISO time}`, bounded to the newest `seen_max` entries, so
  articles already handled (enqueued, duplicate, or not matching) are not downloaded again;
- `stats`: the figures the table has no column for (unmatched, duplicates, fetched; last run
  and running totals), so the API can show them next to the columns.

The cursor is written only at the end of a run, and new HTTP validators only when every post of
the run reached the inbox: a crash or an inbox failure mid-run leaves the old validators, so the
next run fetches the same content again instead of believing it was handled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from yuqing.state.schema import sources

DEFAULT_SEEN_MAX = 5000


@dataclass
class Cursor:
    http: dict[str, dict[str, str]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by newer code, kept as is

    @classmethod
    def from_json(cls, text: str | None) -> "Cursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls()  # a corrupt cursor only costs one full re-crawl (the inbox dedups)
        if not isinstance(data, dict):
            return cls()
        return cls(
            http=dict(data.pop("http", {}) or {}),
            seen=dict(data.pop("seen", {}) or {}),
            stats=dict(data.pop("stats", {}) or {}),
            extra=data,
        )

    def to_json(self, seen_max: int = DEFAULT_SEEN_MAX) -> str:
        seen = self.seen
        if len(seen) > seen_max:
            seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-seen_max:])
        return json.dumps(
            {**self.extra, "http": self.http, "seen": seen, "stats": self.stats},
            ensure_ascii=False,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class SourceHealth:
    name: str
    cursor: Cursor
    last_run: datetime | None
    last_success: datetime | None
    last_error: str | None
    runs: int
    errors: int
    items_last_run: int
    items_total: int


class SourceStore:
    """Reads and writes one row per source. A run reads the cursor at its start and writes the
    cursor and the health figures once, at its end (one crawl per source at a time is the
    scheduler's guarantee)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> SourceHealth | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        if row is None:
            return None
        return SourceHealth(
            name=row.name,
            cursor=Cursor.from_json(row.cursor),
            last_run=row.last_run,
            last_success=row.last_success,
            last_error=row.last_error,
            runs=row.runs,
            errors=row.errors,
            items_last_run=row.items_last_run,
            items_total=row.items_total,
        )

    def cursor(self, name: str) -> Cursor:
        got = self.get(name)
        return got.cursor if got else Cursor()

    def record_run(
        self,
        name: str,
        *,
        finished: datetime,
        cursor: Cursor | None,
        succeeded: bool,
        error: str | None,
        enqueued: int,
        seen_max: int = DEFAULT_SEEN_MAX,
    ) -> None:
        """Add one run to the source's figures. `cursor` None keeps the stored cursor (a run
        that could not start, or was killed). `succeeded` False counts an error and keeps
        `last_success`; `error` (the first problem of the run) replaces `last_error` when given
        and is cleared by a clean successful run."""
        finished = finished.astimezone(timezone.utc)
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        values: dict[str, Any] = {
            "name": name,
            "last_run": finished,
            "runs": 1,
            "errors": 0 if succeeded else 1,
            "items_last_run": enqueued,
            "items_total": enqueued,
            "last_error": error,
        }
        if cursor is not None:
            values["cursor"] = cursor.to_json(seen_max)
        if succeeded:
            values["last_success"] = finished
        update: dict[str, Any] = {
            "last_run": finished,
            "runs": sources.c.runs + 1,
            "errors": sources.c.errors + (0 if succeeded else 1),
            "items_last_run": enqueued,
            "items_total": sources.c.items_total + enqueued,
        }
        if cursor is not None:
            update["cursor"] = values["cursor"]
        if succeeded:
            update["last_success"] = finished
        if error is not None or succeeded:
            update["last_error"] = error
        stmt = insert(sources).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=update)
        with self.engine.begin() as conn:
            conn.execute(stmt)
