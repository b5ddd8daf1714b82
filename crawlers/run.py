"""Entry points: run one crawl of one source.

- `crawl(settings, source_name, *, engine=None, pseudonym_key)` runs a real Scrapy crawl in the
  current process and returns a `CrawlReport`. Twisted's reactor cannot be restarted, so a
  process can run it once; the scheduler and the CLI run each crawl in a fresh process:
- `python -m crawlers.run --config PATH SOURCE [--json]` prints the report (one JSON line with
  `--json`) and exits 0 when the crawl ran, even if pages failed (their errors are in the
  report); 2 when it could not run because of the configuration (broken file, unknown source);
  1 for any other reason it could not run (e.g. the state database is unreachable).
- `crawl_in_subprocess(config_path, source_name, timeout, env=None)` runs that command with a
  time limit and returns its report; a crawl killed at the limit is recorded in the source's
  health figures as a failed run.

The report is produced only after the crawl finished and every post it counts as enqueued was
committed to the inbox; the source's cursor and health row are written last.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from yuqing.config import ConfigError, Settings, SourceConfig

log = logging.getLogger("crawlers")

EXIT_OK = 0
EXIT_CANNOT_RUN = 1
EXIT_CONFIG = 2

_reactor_used = False


@dataclass
class CrawlReport:
    """What one crawl did. `ok` is False only when the crawl could not run or its source's URL
    could not be fetched at all; page-level problems are in `errors` / `messages`."""

    source: str
    ok: bool = True
    fetched: int = 0
    matched: int = 0
    enqueued: int = 0
    duplicates: int = 0
    folded: int = 0
    unmatched: int = 0
    invalid: int = 0
    skipped_seen: int = 0
    not_modified: int = 0
    rechecked: int = 0
    disappeared: int = 0
    reappeared: int = 0
    pages: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    exit_code: int | None = None  # set by crawl_in_subprocess

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrawlReport":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        head = (
            f"source {self.source}: {'ok' if self.ok else 'FAILED'} in {self.seconds:.1f}s: "
            f"fetched {self.fetched}, matched {self.matched}, enqueued {self.enqueued}, "
            f"duplicates {self.duplicates}, unmatched {self.unmatched}, skipped (seen) {self.skipped_seen}, "
            f"not modified {self.not_modified}, errors {self.errors}"
            + (f", re-checked {self.rechecked}" if self.rechecked else "")
            + (f", disappeared {self.disappeared}" if self.disappeared else "")
            + (f", reappeared {self.reappeared}" if self.reappeared else "")
        )
        return "\n".join([head, *("  " + m for m in self.messages)])


def scrapy_settings(source: SourceConfig, log_level: str | None = None) -> Any:
    """Scrapy settings for one source: `crawlers.settings`, then the source's options
    (`obey_robots`, `download_delay`, `concurrency`, `timeout`, `retries`, `user_agent`,
    `autothrottle`, `max_size`). `proxy` is applied per request by SourceProxyMiddleware."""
    from scrapy.settings import Settings as ScrapySettings

    s = ScrapySettings()
    s.setmodule("crawlers.settings", priority="project")
    o = source.options
    mapping = {
        "obey_robots": ("ROBOTSTXT_OBEY", bool),
        "download_delay": ("DOWNLOAD_DELAY", float),
        "concurrency": ("CONCURRENT_REQUESTS_PER_DOMAIN", int),
        "timeout": ("DOWNLOAD_TIMEOUT", float),
        "retries": ("RETRY_TIMES", int),
        "user_agent": ("USER_AGENT", str),
        "autothrottle": ("AUTOTHROTTLE_ENABLED", bool),
        "max_size": ("DOWNLOAD_MAXSIZE", int),
    }
    for key, (name, conv) in mapping.items():
        if key in o:
            s.set(name, conv(o[key]), priority="cmdline")
    if log_level:
        s.set("LOG_LEVEL", log_level.upper(), priority="cmdline")
    s.set("LOG_INSTALL_ROOT_HANDLER", True, priority="cmdline")
    return s


def crawl(
    settings: Settings,
    source_name: str,
    *,
    engine: Engine | None = None,
    pseudonym_key: bytes,
    log_level: str | None = None,
    progress: bool = False,
) -> CrawlReport:
    """Run one crawl of `source_name` in this process and return its report. `progress` shows
    a bar on stderr (pages parsed, posts enqueued) for a person watching a crawl.

    Raises `ConfigError` for an unknown source and `RuntimeError` when this process already ran
    a crawl (the reactor cannot restart: use `crawl_in_subprocess`). `engine` defaults to the
    configured state database (migrated to the newest schema first).
    """
    global _reactor_used
    source = settings.source(source_name)
    if _reactor_used:
        raise RuntimeError(
            "this process already ran a Scrapy crawl and Twisted's reactor cannot restart; "
            "run each crawl in a fresh process (crawlers.run.crawl_in_subprocess)"
        )
    if len(pseudonym_key) < 16:
        raise ValueError("pseudonym_key: expected at least 16 bytes of secret")

    from scrapy.crawler import CrawlerProcess

    from crawlers.context import COUNTERS, RunContext
    from crawlers.matching import Matcher
    from crawlers.spiders import spider_for
    from crawlers.state import DEFAULT_SEEN_MAX, SourceStore
    from yuqing.state.db import connect, migrate

    # configuration problems first: they must not need (or touch) the database
    spider_cls = spider_for(source)
    spider_cls.validate(source)
    if source.options.get("proxy"):
        from crawlers.middlewares import expand_env

        try:
            expand_env(str(source.options["proxy"]))
        except KeyError as e:
            raise ConfigError(f"source {source.name!r}: options.proxy: {e.args[0]}") from None
    matcher = Matcher(settings.watchlists)
    own_engine = engine is None
    if engine is None:
        engine = connect(settings.state_url)
        migrate(engine)
    store = SourceStore(engine)
    ctx = RunContext(
        settings=settings,
        source=source,
        engine=engine,
        pseudonym_key=pseudonym_key,
        matcher=matcher,
        cursor=store.cursor(source.name),
    )
    if not matcher:
        ctx.warn(None, "no watchlists configured: every post will be dropped as unmatched")
    if not source.enabled:
        ctx.warn(None, "the source is disabled in the configuration; crawling it anyway as asked")

    _reactor_used = True
    process = CrawlerProcess(scrapy_settings(source, log_level or ("WARNING" if progress else None)))
    crawler = process.create_crawler(spider_cls)
    bar = _progress_bar(crawler, ctx) if progress else None
    process.crawl(crawler, ctx=ctx)
    try:
        process.start(install_signal_handlers=threading_main())
    finally:
        if bar is not None:
            bar.close()
        finished = datetime.now(timezone.utc)
        if ctx.close_reason != "finished":
            ctx.error(None, f"the crawl did not finish ({ctx.close_reason or 'stopped'}); the cursor keeps its place")
        ok = not ctx.start_failed and ctx.complete
        try:
            store.record_run(
                source.name,
                finished=finished,
                cursor=ctx.final_cursor(),
                succeeded=ok,
                error=ctx.first_error,
                enqueued=ctx.counts["enqueued"],
                seen_max=int(source.options.get("seen_max", DEFAULT_SEEN_MAX)),
            )
        except Exception as e:  # noqa: BLE001 - the report must still come out
            ctx.error(None, f"could not record the run in the state database: {type(e).__name__}: {e}")
        if own_engine:
            engine.dispose()
    report = CrawlReport(
        source=source.name,
        ok=ok,
        messages=list(ctx.messages),
        started_at=ctx.started_at.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        seconds=round((finished - ctx.started_at).total_seconds(), 3),
        **{k: int(ctx.counts.get(k, 0)) for k in COUNTERS},
    )
    return report


def _progress_bar(crawler: Any, ctx: Any) -> Any:
    """A tqdm bar fed by Scrapy's own signals: one tick per response, counts as postfix."""
    from scrapy import signals
    from tqdm import tqdm

    bar = tqdm(desc=f"crawl {ctx.source.name}", unit="page", file=sys.stderr)

    def tick(*_: Any, **__: Any) -> None:
        bar.update(1)
        bar.set_postfix(enqueued=ctx.counts["enqueued"], unmatched=ctx.counts["unmatched"],
                        errors=ctx.counts["errors"], refresh=False)

    crawler.signals.connect(tick, signal=signals.response_received, weak=False)
    return bar


def threading_main() -> bool:
    """Install Scrapy's signal handlers only on the main thread (they cannot be set elsewhere)."""
    import threading

    return threading.current_thread() is threading.main_thread()


# -- command line ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawlers.run", description="Run one crawl of one configured source."
    )
    parser.add_argument("--config", type=Path, default=None, help="configuration file (default: $YUQING_CONFIG or ./config.yaml)")
    parser.add_argument("source", help="the source's name in the configuration")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    parser.add_argument("--log-level", default=None, help="Scrapy log level (default INFO)")
    args = parser.parse_args(argv)

    from yuqing.config import load_settings

    def fail(code: int, msg: str) -> int:
        if args.json:
            print(CrawlReport(source=args.source, ok=False, errors=1, messages=[msg], exit_code=code).to_json())
        print(f"error: {msg}", file=sys.stderr)
        return code

    try:
        settings = load_settings(args.config)
        settings.source(args.source)
    except ConfigError as e:
        return fail(EXIT_CONFIG, str(e))
    try:
        from yuqing.privacy import pseudonym_key

        key = pseudonym_key(settings)
    except ConfigError as e:
        return fail(EXIT_CONFIG, str(e))
    except OSError as e:
        return fail(EXIT_CANNOT_RUN, f"cannot read or create the pseudonym key: {e}")
    try:
        report = crawl(settings, args.source, pseudonym_key=key, log_level=args.log_level,
                       progress=not args.json and sys.stderr.isatty())
    except ConfigError as e:
        return fail(EXIT_CONFIG, str(e))
    except Exception as e:  # noqa: BLE001 - e.g. the state database is unreachable
        log.debug("crawl could not run", exc_info=True)
        return fail(EXIT_CANNOT_RUN, f"source {args.source}: the crawl could not run: {type(e).__name__}: {e}")
    report.exit_code = EXIT_OK
    print(report.to_json() if args.json else report.summary())
    sys.stdout.flush()
    return EXIT_OK


# -- subprocess -----------------------------------------------------------------------------
def crawl_in_subprocess(
    config_path: Path,
    source_name: str,
    timeout: float,
    env: dict[str, str] | None = None,
    *,
    log_file: Path | None = None,
    grace: float = 5.0,
) -> CrawlReport:
    """Run `python -m crawlers.run --config config_path source_name --json` in a fresh process.

    `env` is added to this process's environment. The child's log (stderr) goes to `log_file`
    when given, else it is kept and its tail is added to the report of a run that failed. At
    `timeout` seconds the child's process group is stopped (see `_stop`): a child that still
    reports has committed what it holds and recorded its run (its cursor does not advance past
    what it did not finish); a killed one is recorded as failed in the source's health figures
    here. Either way the report is not ok.
    """
    root = Path(__file__).resolve().parent.parent
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), child_env.get("PYTHONPATH", "")) if p)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [sys.executable, "-m", "crawlers.run", "--config", str(config_path), source_name, "--json"]
    started = datetime.now(timezone.utc)
    err_target: Any = open(log_file, "ab") if log_file else subprocess.PIPE  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err_target, env=child_env, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: Scrapy stops gracefully, the open inbox batch is committed and the
            # run recorded by the child itself; SIGKILL only if it does not stop in time
            msg = f"source {source_name}: crawl stopped at the {timeout:g}s time limit"
            out, err = _stop(proc, grace)
            report = _parse_report(out)
            if report is not None:  # stopped gracefully: its figures are real and recorded
                report.ok = False
                report.errors += 1
                report.messages.insert(0, msg)
                report.exit_code = proc.returncode
                return report
            msg = f"source {source_name}: crawl killed after the {timeout:g}s time limit"
            _record_killed(config_path, source_name, msg)
            return CrawlReport(
                source=source_name,
                ok=False,
                errors=1,
                messages=[msg, *_tail(err)],
                started_at=started.isoformat(timespec="seconds"),
                finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                seconds=round((datetime.now(timezone.utc) - started).total_seconds(), 3),
                exit_code=proc.returncode,
            )
    finally:
        if log_file:
            err_target.close()
    report = _parse_report(out)
    if report is None:
        report = CrawlReport(
            source=source_name,
            ok=False,
            errors=1,
            messages=[f"source {source_name}: the crawl process exited with status {proc.returncode} without a report", *_tail(err)],
        )
    elif proc.returncode != EXIT_OK:
        report.ok = False
        report.messages.extend(_tail(err, 5))
    report.exit_code = proc.returncode
    return report


def _stop(proc: subprocess.Popen[bytes], grace: float) -> tuple[bytes, bytes]:
    """SIGTERM (Scrapy closes the spider gracefully: in-flight downloads finish), a second
    SIGTERM after `grace` (Scrapy's forced stop: the reactor stops, the run is still recorded),
    SIGKILL a few seconds later as the last resort."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.communicate()


def _parse_report(out: bytes | None) -> CrawlReport | None:
    for line in reversed((out or b"").decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return CrawlReport.from_dict(json.loads(line))
            except (ValueError, TypeError):
                return None
    return None


def _tail(err: bytes | None, n: int = 20) -> list[str]:
    if not err:
        return []
    return ["  | " + line for line in err.decode("utf-8", "replace").splitlines()[-n:]]


def _record_killed(config_path: Path, source_name: str, msg: str) -> None:
    """A killed crawl wrote nothing: count it as a failed run (cursor unchanged)."""
    try:
        from crawlers.state import SourceStore
        from yuqing.config import load_settings
        from yuqing.state.db import connect, migrate

        settings = load_settings(config_path)
        engine = connect(settings.state_url)
        try:
            migrate(engine)
            SourceStore(engine).record_run(
                source_name, finished=datetime.now(timezone.utc), cursor=None, succeeded=False, error=msg, enqueued=0
            )
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - the report already says what happened
        log.warning("could not record the killed crawl of %s", source_name, exc_info=True)


if __name__ == "__main__":
    sys.exit(main())
