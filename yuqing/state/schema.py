"""Tables of the state database. The migrations in `migrations/versions` create exactly these;
`tests/state/test_migrations.py` fails when the two drift apart."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend. SQLite has no time zones and hands back naive
    values; this stores UTC and returns aware UTC so comparisons never mix the two."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state database; use aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = sa.MetaData()

# Durable inbox: a fetched, matched post waits here until a worker has classified and indexed it.
# `doc_id` is unique, so a post fetched twice is rejected on insert (idempotent crawling).
inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("doc_id", sa.String(64), nullable=False, unique=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # Post as JSON
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending|claimed|done|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_inbox_status_id", "status", "id"),
)

# Exact-text clusters: identical texts fold into one story whose size is counted here.
clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("text_hash", sa.String(64), primary_key=True),
    sa.Column("cluster_id", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False, server_default="1"),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
)

# Per-source cursor and health figures (a source that goes silent is itself a signal).
sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("cursor", sa.Text),  # JSON: etag, last_modified, since ids...
    sa.Column("last_run", UTCDateTime()),
    sa.Column("last_success", UTCDateTime()),
    sa.Column("last_error", sa.Text),
    sa.Column("runs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("items_last_run", sa.Integer, nullable=False, server_default="0"),
    sa.Column("items_total", sa.Integer, nullable=False, server_default="0"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    # one incident = one alert thread: (watchlist, rule) while open
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open|acknowledged|resolved
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("watchlist", sa.String(200)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("figures", sa.Text, nullable=False),  # JSON
    sa.Column("evidence", sa.Text, nullable=False),  # JSON: post ids, series, ...
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deadline_at", UTCDateTime()),
    sa.Column("acknowledged_at", UTCDateTime()),
    sa.Column("acknowledged_by", sa.String(200)),
    sa.Column("resolved_at", UTCDateTime()),
    # the holding statement (AlertStore.mark_published): when, by whom, where; the countdowns
    # to the next update and to the press conference the level requires (migration 0003)
    sa.Column("published_at", UTCDateTime()),
    sa.Column("published_by", sa.String(200)),
    sa.Column("statement_url", sa.Text),
    sa.Column("next_update_at", UTCDateTime()),
    sa.Column("press_conference_at", UTCDateTime()),
    sa.Index("ix_alerts_key_state", "key", "state"),
    sa.Index("ix_alerts_opened", "opened_at"),
    # one incident = one alert thread: at most one unresolved alert per key, even with two
    # detectors racing (the scheduler lease normally prevents that; this makes it a guarantee)
    sa.Index(
        "uq_alerts_unresolved_key",
        "key",
        unique=True,
        sqlite_where=sa.text("state <> 'resolved'"),
        postgresql_where=sa.text("state <> 'resolved'"),
    ),
)

# Every change to an alert, in order; the id is the SSE event id (Last-Event-ID resumes here).
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # opened|escalated|updated|acknowledged|resolved
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200)),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Index("ix_alert_events_alert", "alert_id"),
)

# Notification outbox: one row per (alert event, channel), written in the same transaction as
# the event, so a crash between detecting and delivering loses no notification.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("alert_event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alert_events.id"), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending|sent|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    # not before this time: the retry backoff, or the lease of a drainer that claimed the row
    # (status 'sending'); a drainer that died leaves it to be retried when it passes (0003)
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.UniqueConstraint("alert_event_id", "channel", name="uq_deliveries_event_channel"),
    sa.Index("ix_deliveries_status", "status", "id"),
)

# The escalation ladder's record: which contact was paged at which rung of which ladder run
# (a run starts with the opened / escalated / reopened event, `trigger_event_id`); `event_id`
# is the event whose deliveries carry the page. The unique key makes a rung page once even
# with two schedulers racing (migration 0003).
oncall_pages = sa.Table(
    "oncall_pages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("trigger_event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alert_events.id"), nullable=False),
    sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alert_events.id"), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("paged_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("trigger_event_id", "step", "contact", name="uq_oncall_pages_run_step_contact"),
    sa.Index("ix_oncall_pages_alert", "alert_id"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),  # sha256; the token itself is never stored
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(300)),
    sa.Column("detail", sa.Text),
)

# Single-leader lease for the scheduler role (see docs/decisions.md, "exactly-once scheduling").
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

# --- API corrections, drafts, saved searches (migration 0004) ---------------------------------

# An analyst's correction of one label of one post (sentiment, topics or rumour). Append-only:
# the newest row per (post_id, field) is the label in force; older rows are the history.
# `post` is the post as it was corrected (JSON): the training export needs the text and
# context even after retention has removed the post from the index.
corrections = sa.Table(
    "corrections",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("post_id", sa.String(128), nullable=False),
    sa.Column("field", sa.String(16), nullable=False),  # sentiment|topics|rumor
    sa.Column("value", sa.Text, nullable=False),  # JSON: "negative" | ["pollution"] | true
    sa.Column("previous", sa.Text),  # JSON: the model's label at the time
    sa.Column("note", sa.Text),
    sa.Column("lang", sa.String(16)),
    sa.Column("post", sa.Text, nullable=False),  # JSON: the Post when corrected
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_corrections_post_field", "post_id", "field", "id"),
)

# Holding statements as the duty officer edited them: one row per save, the newest per
# (alert_id, lang) is the current text (optimistic concurrency on its id).
statement_drafts = sa.Table(
    "statement_drafts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("lang", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_statement_drafts_alert_lang", "alert_id", "lang", "id"),
)

# An analyst's saved search: the query parameters of GET /posts, by name, per owner.
saved_searches = sa.Table(
    "saved_searches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("owner", "name", name="uq_saved_searches_owner_name"),
)

# Crawl requests: the scheduler asks, crawler processes claim (SKIP LOCKED) and run them. At
# most one pending-or-running request per source: a run still going when the next is due is
# coalesced into it, and one source is never crawled twice at once.
crawl_queue = sa.Table(
    "crawl_queue",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending|running|done|failed
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report", sa.Text),  # the crawl's report, JSON
    sa.Index(
        "uq_crawl_queue_active_source",
        "source",
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'running')"),
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    ),
    sa.Index("ix_crawl_queue_status", "status", "id"),
)

# --- Crawl evidence and near-duplicate folding (migration 0006) --------------------------------

# The size of a story cluster over all its texts: `clusters` maps each distinct text (exact hash)
# to its cluster and counts copies of that text; near-duplicate texts (reposts with a prefix,
# a hashtag, an edited word) map to the same cluster_id, and this row counts them all.
cluster_sizes = sa.Table(
    "cluster_sizes",
    metadata,
    sa.Column("cluster_id", sa.String(64), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False, server_default="1"),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
)

# MinHash signature of each distinct text that joined or started a cluster (64 x uint32), and
# its LSH band buckets: a new text reads only the signatures sharing one of its 16 buckets.
near_dup_signatures = sa.Table(
    "near_dup_signatures",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("text_hash", sa.String(64), nullable=False),
    sa.Column("cluster_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_near_dup_signatures_created", "created_at"),
)
near_dup_buckets = sa.Table(
    "near_dup_buckets",
    metadata,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("signature_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
)

# Raw captures (HTML / JSON / XML bytes as served), compressed, content-addressed by the
# SHA-256 of the raw bytes; one capture can back many posts (a thread page, an API page).
evidence = sa.Table(
    "evidence",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("codec", sa.String(8), nullable=False),  # zstd | zlib
    sa.Column("size", sa.Integer, nullable=False),  # raw bytes
    sa.Column("content_type", sa.String(200)),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Which captures back which post (a feed entry and the article page it led to: two rows).
post_evidence = sa.Table(
    "post_evidence",
    metadata,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),  # the URL the capture was served at
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Index("ix_post_evidence_sha256", "sha256"),
    sa.Index("ix_post_evidence_captured", "captured_at"),
)

# Every matched post a crawler saw, for re-checks: `direct` when its own URL was fetched (an
# article page), so a later 404/410 there means the post is gone; `disappeared_at` then.
crawled_posts = sa.Table(
    "crawled_posts",
    metadata,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("direct", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    sa.Column("checked_at", UTCDateTime()),
    sa.Column("disappeared_at", UTCDateTime()),
    sa.Index("ix_crawled_posts_source_check", "source", "disappeared_at", "checked_at"),
    sa.Index("ix_crawled_posts_last_seen", "last_seen"),
)
