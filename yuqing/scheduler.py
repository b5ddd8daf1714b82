"""Scheduling: crawl requests per source interval, detection every `alerts.interval`, retention
daily.

APScheduler 3 with its SQLAlchemy job store in the state database, so schedules survive
restarts and missed runs are coalesced into one. A crawl job only requests a crawl
(`yuqing.state.crawls`); crawler processes run it (`yuqing.crawler`). Only the holder of the
`scheduler` lease runs jobs (`yuqing.leader`).

Job functions are module-level and take only the config path, as a persistent job store
requires; each process keeps one store/engine per config path.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from yuqing.config import ConfigError, Settings, load_settings
from yuqing.leader import Lease

log = logging.getLogger("yuqing.scheduler")


class _Context:
    """Per config file: the store and engine (opened once), and the settings, re-read whenever
    the file changes, so edits through the API take effect without a restart."""

    def __init__(self, config_path: str) -> None:
        from index import open_store
        from yuqing.state.db import connect

        self.path = config_path
        self.mtime = _mtime(config_path)
        self.settings = load_settings(config_path)
        self.store = open_store(self.settings)
        self.store.ensure_schema()
        self.engine = connect(self.settings.state_url)

    def current(self) -> tuple[Settings, Any, Any]:
        m = _mtime(self.path)
        if m != self.mtime:
            try:
                self.settings = load_settings(self.path)
                self.mtime = m
            except ConfigError as e:  # keep the last good settings; the API shows the error
                log.error("configuration changed but is invalid, keeping the previous one: %s", e)
        return self.settings, self.store, self.engine


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@lru_cache(maxsize=8)
def _ctx(config_path: str) -> _Context:
    return _Context(config_path)


def _context(config_path: str) -> tuple[Settings, Any, Any]:
    return _ctx(config_path).current()


def crawl_job(config_path: str, source: str) -> None:
    """Request a crawl; a crawler process runs it (`yuqing.crawler`). A request still pending
    or running absorbs this one, so a slow source is never crawled twice at once."""
    from yuqing.state.crawls import CrawlQueue

    _, _, engine = _context(config_path)
    if not CrawlQueue(engine).request(source):
        log.info("crawl %s: the previous run is still queued or running; not requested again", source)


def detect_job(config_path: str) -> None:
    """One alerts tick: detection (alert changes and their delivery rows in one transaction),
    escalation up the on-call ladder, then whatever deliveries are due. Each step runs even if
    an earlier one failed; nothing here sleeps (retry waits are stored in the outbox)."""
    from alerts.service import tick

    settings, store, engine = _context(config_path)
    store.refresh()
    report = tick(settings, store, engine, datetime.now(timezone.utc))
    for c in report.changes:
        log.warning("alert %s: #%s %s %s", c.kind, c.alert_id, c.level, c.title)
    for d in report.deliveries:
        log.info("delivery: %s", d)


def retention_job(config_path: str) -> None:
    """Delete what is past retention: posts in the index, processed inbox rows, finished crawl
    requests, evidence captures and near-duplicate signatures."""
    from crawlers.evidence import purge as purge_evidence
    from index.base import Query
    from yuqing.privacy import retention_cutoff
    from yuqing.state.crawls import CrawlQueue
    from yuqing.state.inbox import Inbox

    settings, store, engine = _context(config_path)
    cutoff = retention_cutoff(settings)
    n = store.delete_by_query(Query(end=cutoff, size=0))
    m = Inbox(engine).purge_done(cutoff)
    CrawlQueue(engine).purge(cutoff)
    e = purge_evidence(settings, engine, cutoff)
    log.info("retention: %d posts, %d inbox rows and %d captures older than %s removed", n, m, e, cutoff.isoformat())


def build_scheduler(settings: Settings, config_path: str, engine: Any) -> BackgroundScheduler:
    """A scheduler whose jobs mirror the configuration (jobs of removed sources are dropped)."""
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone=settings.timezone,
    )
    return scheduler


def sync_jobs(scheduler: BackgroundScheduler, settings: Settings, config_path: str) -> list[str]:
    """Make the scheduler's jobs exactly those the configuration asks for; returns their ids."""
    wanted: dict[str, dict[str, Any]] = {}
    now = datetime.now(timezone.utc)
    for s in settings.sources:
        if not s.enabled:
            continue
        secs = s.interval.total_seconds()
        wanted[f"crawl:{s.name}"] = dict(
            func=crawl_job, args=[config_path, s.name], name=f"crawl {s.name}", trigger="interval", seconds=secs,
            jitter=int(min(secs * 0.1, 60)) or None, next_run_time=now,
        )
    wanted["detect"] = dict(
        func=detect_job, args=[config_path], name="detect", trigger="interval",
        seconds=settings.alerts.interval.total_seconds(), next_run_time=now + timedelta(seconds=5),
    )
    wanted["retention"] = dict(func=retention_job, args=[config_path], name="retention", trigger="interval", hours=24)
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            job.remove()
    for job_id, spec in wanted.items():
        scheduler.add_job(id=job_id, replace_existing=True, **spec)
    return sorted(wanted)


class LeaderScheduler:
    """Runs the scheduler only while holding the `scheduler` lease."""

    def __init__(self, settings: Settings, config_path: str, engine: Any, ttl: timedelta = timedelta(seconds=30)):
        self.settings, self.config_path, self.engine = settings, config_path, engine
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # unique per instance
        self.lease = Lease(engine, "scheduler", holder, ttl)
        self.ttl = ttl
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._mtime: float | None = None
        self._thread = threading.Thread(target=self._loop, name="leader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _resync_if_changed(self) -> None:
        """Sources added or intervals changed in the file (by hand or through the API) are
        scheduled at once; an invalid file is logged and the running schedule kept."""
        m = _mtime(self.config_path)
        if m == self._mtime or self.scheduler is None:
            return
        self._mtime = m
        try:
            self.settings = load_settings(self.config_path)
        except ConfigError as e:
            log.error("configuration changed but is invalid, keeping the schedule: %s", e)
            return
        jobs = sync_jobs(self.scheduler, self.settings, self.config_path)
        log.info("configuration changed: %d jobs scheduled", len(jobs))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                leader = self.lease.acquire()
            except Exception:  # noqa: BLE001 - a state DB hiccup: retry, keep the role
                log.exception("lease renewal failed")
                leader = False
            if leader and self.scheduler is None:
                log.info("took the scheduler lease; starting jobs")
                self.scheduler = build_scheduler(self.settings, self.config_path, self.engine)
                self.scheduler.start(paused=True)
                sync_jobs(self.scheduler, self.settings, self.config_path)
                self.scheduler.resume()
                self._mtime = _mtime(self.config_path)
            elif not leader and self.scheduler is not None:
                log.warning("lost the scheduler lease; pausing jobs")
                self.scheduler.shutdown(wait=False)
                self.scheduler = None
            if leader:
                self._resync_if_changed()
            self._stop.wait(min(self.ttl.total_seconds() / 3, 5.0))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        try:
            self.lease.release()
        except Exception:  # noqa: BLE001
            log.exception("lease release failed")
