"""The scheduler mirrors the configuration file: jobs per source, detection, retention; an edit
to the file (by hand or through the API) is scheduled without a restart; only the lease holder
schedules."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
import yaml

from yuqing.config import load_settings
from yuqing.scheduler import LeaderScheduler
from yuqing.state.crawls import CrawlQueue
from yuqing.state.db import connect, migrate
from yuqing.state.schema import crawl_queue


def _write(path: Path, sources: list[str], data: Path) -> None:
    path.write_text(yaml.safe_dump({
        "data_dir": str(data),
        "sources": [{"name": n, "kind": "feed", "url": f"http://127.0.0.1:9/{n}.xml", "interval": "1h"} for n in sources],
        "watchlists": [{"name": "agency", "terms": ["兰山市水务局"]}],
    }, allow_unicode=True), encoding="utf-8")


def _wait(pred, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_jobs_follow_the_config_file_and_only_the_leader_runs_them(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    _write(config, ["news"], tmp_path / "data")
    settings = load_settings(config)
    engine = connect(settings.state_url)
    migrate(engine)
    a = LeaderScheduler(settings, str(config), engine, ttl=timedelta(seconds=6))  # renewed every 2 s: a loaded CI box may stall a renewal
    b = LeaderScheduler(settings, str(config), engine, ttl=timedelta(seconds=6))
    a.start()
    try:
        assert _wait(lambda: a.scheduler is not None)
        b.start()
        ids = lambda: {j.id for j in a.scheduler.get_jobs()} if a.scheduler else set()  # noqa: E731
        assert ids() == {"crawl:news", "detect", "retention"}
        # the crawl job ran at once and asked for a crawl (a crawler process would take it)
        assert _wait(lambda: CrawlQueue(engine).request("news") is False)
        time.sleep(1.2)
        assert b.scheduler is None  # a standby, not a second scheduler
        time.sleep(1.1)  # a different mtime even on coarse file systems
        _write(config, ["news", "forum"], tmp_path / "data")
        assert _wait(lambda: ids() == {"crawl:news", "crawl:forum", "detect", "retention"})
        _write(config, ["forum"], tmp_path / "data")
        assert _wait(lambda: ids() == {"crawl:forum", "detect", "retention"})
        # an invalid edit keeps the running schedule
        config.write_text("sources: [\n", encoding="utf-8")
        time.sleep(6)
        assert ids() == {"crawl:forum", "detect", "retention"}
        # the leader goes away: the standby takes over within a lease period
        a.stop()
        _write(config, ["forum"], tmp_path / "data")
        assert _wait(lambda: b.scheduler is not None, 20)
    finally:
        a.stop()
        b.stop()
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(crawl_queue)).scalar() >= 1
    engine.dispose()
