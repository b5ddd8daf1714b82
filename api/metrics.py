"""Prometheus metrics for `/api/v1/metrics`.

Why a registry per app and figures read at scrape time: crawling, classification and indexing
run in other processes (the worker, the scheduler), so counters kept in this process would
show only what this process saw. The state database is the one place all of them write, so the
collector reads it when Prometheus scrapes: inbox rows by status (ingested = all rows,
classified+indexed = done), alerts by state and level, source runs and errors. Request latency
is this process's own and is a normal histogram.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from index.base import Query, Store
from yuqing.state.schema import alerts, inbox, sources

log = logging.getLogger(__name__)


class StateCollector(Collector):
    """Pipeline figures read from the shared state database (and the index) per scrape."""

    def __init__(self, engine: sa.Engine, store: Store) -> None:
        self.engine = engine
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("yuqing_state_up", "1 when the state database answered this scrape")
        try:
            with self.engine.connect() as c:
                inbox_rows = c.execute(sa.select(inbox.c.status, sa.func.count()).group_by(inbox.c.status)).all()
                alert_rows = c.execute(
                    sa.select(alerts.c.state, alerts.c.level, sa.func.count()).group_by(alerts.c.state, alerts.c.level)
                ).all()
                source_rows = c.execute(
                    sa.select(sources.c.name, sources.c.runs, sources.c.errors, sources.c.items_total)
                ).all()
        except sa.exc.SQLAlchemyError as e:
            log.warning("metrics: state database unavailable: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        by_status = {status: n for status, n in inbox_rows}
        ingested = CounterMetricFamily("yuqing_posts_ingested", "posts accepted into the inbox (all time)")
        ingested.add_metric([], sum(by_status.values()))
        yield ingested
        done = CounterMetricFamily("yuqing_posts_classified", "posts classified and indexed by the workers")
        done.add_metric([], by_status.get("done", 0))
        yield done
        depth = GaugeMetricFamily("yuqing_inbox_depth", "inbox rows by status", labels=["status"])
        for status in ("pending", "claimed", "failed"):
            depth.add_metric([status], by_status.get(status, 0))
        yield depth

        al = GaugeMetricFamily("yuqing_alerts", "alerts by state and level", labels=["state", "level"])
        for state, level, n in alert_rows:
            al.add_metric([state, level], n)
        yield al

        runs = CounterMetricFamily("yuqing_source_runs", "crawl runs per source", labels=["source"])
        errs = CounterMetricFamily("yuqing_source_errors", "failed crawl runs per source", labels=["source"])
        items = CounterMetricFamily("yuqing_source_items", "items fetched per source", labels=["source"])
        for name, r, e, i in source_rows:
            runs.add_metric([name], r)
            errs.add_metric([name], e)
            items.add_metric([name], i)
        yield runs
        yield errs
        yield items

        indexed = GaugeMetricFamily("yuqing_posts_indexed", "posts in the search index")
        try:
            indexed.add_metric([], self.store.count(Query(size=0)))
            yield indexed
        except Exception as e:  # noqa: BLE001 - an unreachable index must not break the scrape
            log.warning("metrics: index count failed: %s", e)


def build_registry(engine: sa.Engine, store: Store) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry(auto_describe=False)
    latency = Histogram(
        "yuqing_http_request_duration_seconds",
        "HTTP request latency by method, route template and status",
        ["method", "route", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )
    registry.register(StateCollector(engine, store))
    return registry, latency
