"""The crawler role: claims crawl requests from the queue and runs each in a fresh process.

The scheduler decides *when* a source is crawled (`CrawlQueue.request`); crawler processes decide
nothing, they take the next request and run it (`crawlers.run.crawl_in_subprocess`). Scaled out,
run as many as the sources need (`yuqing crawler --slots N` on each machine); embedded, `yuqing
run` runs the same loop in-process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from yuqing.config import ConfigError, Settings, load_settings
from yuqing.state.crawls import CrawlQueue
from yuqing.worker import worker_name

log = logging.getLogger("yuqing.crawler")


def crawl_timeout(settings: Settings, source: str) -> float:
    """A crawl may take four of its intervals (at least a minute) before it is stopped."""
    return max(60.0, settings.source(source).interval.total_seconds() * 4)


def run_one(queue: CrawlQueue, config_path: str, me: str) -> bool:
    """Claim and run one request; False when there was none."""
    from crawlers.run import crawl_in_subprocess

    try:
        settings = load_settings(config_path)  # re-read: sources may have changed since start
    except ConfigError as e:
        log.error("cannot read the configuration: %s", e)
        return False
    # the lease outlives the longest allowed crawl and the stop that follows it, so a request
    # is taken over only from a crawler that died
    longest = max((crawl_timeout(settings, s.name) for s in settings.sources), default=60.0)
    req = queue.claim(me, lease=timedelta(seconds=longest + 120))
    if req is None:
        return False
    try:
        timeout = crawl_timeout(settings, req.source)
    except ConfigError as e:  # the source was removed after the request was made
        queue.finish(req.id, me, False, {"source": req.source, "messages": [str(e)]})
        return True
    report = crawl_in_subprocess(Path(config_path), req.source, timeout=timeout)
    queue.finish(req.id, me, report.ok, asdict(report))
    log.info("%s", report.summary())
    return True


def run_crawler(config_path: str, stop: threading.Event, *, slots: int = 1, poll: float = 1.0) -> None:
    """Run `slots` crawls at a time until `stop` is set."""
    from yuqing.state.db import connect, migrate

    settings = load_settings(config_path)
    engine = connect(settings.state_url)
    migrate(engine)
    queue = CrawlQueue(engine)

    def slot(n: int) -> None:
        me = f"{worker_name()}/crawl{n}"
        while not stop.is_set():
            try:
                busy = run_one(queue, config_path, me)
            except Exception:  # noqa: BLE001 - one bad run must not end the role
                log.exception("crawl slot %d failed", n)
                busy = False
            if not busy:
                stop.wait(poll)

    threads = [threading.Thread(target=slot, args=(n,), name=f"crawl-slot-{n}", daemon=True) for n in range(slots)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=5)
    engine.dispose()
