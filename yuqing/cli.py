"""The `yuqing` command: thin commands over the same code the services run."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from yuqing.config import ConfigError, load_settings


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="configuration file (default: $YUQING_CONFIG or ./config.yaml)")


def _config_path(args: argparse.Namespace) -> str:
    import os
    from pathlib import Path

    path = args.config or os.environ.get("YUQING_CONFIG") or "config.yaml"
    if not Path(path).exists():
        raise ConfigError(
            f"{path}: configuration file not found (copy config.example.yaml to config.yaml and edit it, "
            "or pass --config)"
        )
    return str(Path(path).resolve())


def cmd_run(args: argparse.Namespace) -> int:
    from yuqing.runner import serve

    path = _config_path(args)
    serve(load_settings(path), path, banner="Yuqing is running.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from yuqing.demo.run import main

    return main(port=args.port, speed=args.speed, data_dir=args.data_dir, models_dir=args.models_dir)


def _stop_on_signals():  # type: ignore[no-untyped-def]
    """An event set by SIGTERM or SIGINT: a role finishes what it holds, then stops."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_worker(args: argparse.Namespace) -> int:
    from yuqing.worker import run_worker

    run_worker(load_settings(_config_path(args)), _stop_on_signals(), once=args.once)
    return 0


def cmd_crawler(args: argparse.Namespace) -> int:
    from yuqing.crawler import run_crawler

    run_crawler(_config_path(args), _stop_on_signals(), slots=args.slots)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from yuqing.scheduler import LeaderScheduler
    from yuqing.state.db import connect, migrate

    path = _config_path(args)
    settings = load_settings(path)
    engine = connect(settings.state_url)
    migrate(engine)
    stop = _stop_on_signals()
    leader = LeaderScheduler(settings, path, engine)
    leader.start()
    stop.wait()
    leader.stop()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from index import open_store
    from yuqing.state.db import connect, migrate

    path = _config_path(args)
    settings = load_settings(path)
    engine = connect(settings.state_url)
    migrate(engine)
    store = open_store(settings)
    app = create_app(settings, store=store, engine=engine, config_path=path)
    uvicorn.run(app, host=settings.api.host, port=settings.api.port)
    return 0


def cmd_crawl(args: argparse.Namespace, rest: list[str]) -> int:
    from crawlers.run import main

    return main(rest)


def cmd_classify(args: argparse.Namespace, rest: list[str]) -> int:
    from nlp.contract import main

    return main(rest)


def cmd_search(args: argparse.Namespace) -> int:
    from index import Query, open_store

    settings = load_settings(_config_path(args))
    store = open_store(settings)
    start = datetime.now(timezone.utc) - timedelta(hours=args.hours) if args.hours else None
    page = store.search(
        Query(text=args.query, start=start, langs=args.lang or None, size=args.limit, highlight=not args.json)
    )
    if args.json:
        for hit in page.hits:
            print(hit.post.model_dump_json())
        return 0
    print(f"{page.total} posts")
    for hit in page.hits:
        p = hit.post
        c = p.classification
        label = f"{c.sentiment:<8} rumour {c.rumor:.2f}" if c else "unclassified"
        snippet = (hit.highlights.get("text") or [p.text[:120]])[0].replace("\n", " ")
        print(f"{p.published_at:%Y-%m-%d %H:%M} [{p.lang or '?'}] {p.source:<12} {label}  {snippet}")
    return 0


def cmd_alerts(args: argparse.Namespace, rest: list[str]) -> int:
    if rest and rest[0] == "backtest":
        from alerts.backtest import main

        return main(rest[1:])
    p = argparse.ArgumentParser(prog="yuqing alerts")
    _config_arg(p)
    p.add_argument("--state", choices=["open", "acknowledged", "resolved"])
    p.add_argument("--limit", type=int, default=20)
    a = p.parse_args(rest)
    from alerts.store import AlertStore
    from yuqing.state.db import connect, migrate

    settings = load_settings(_config_path(a))
    engine = connect(settings.state_url)
    migrate(engine)
    for alert in AlertStore(engine).list(state=a.state, limit=a.limit):
        d = alert if isinstance(alert, dict) else alert.model_dump(mode="json")
        print(f"#{d['id']:<4} {d['level']:<7} {d['state']:<13} {d['opened_at']}  {d['title']}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from api.security import create_token
    from yuqing.state.db import connect, migrate

    settings = load_settings(_config_path(args))
    engine = connect(settings.state_url)
    migrate(engine)
    print(create_token(engine, args.name, args.role))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the file, then each source against its spider's own rules (presets, selectors,
    field mappings), so a typo fails here rather than as an empty crawl."""
    from crawlers.spiders import spider_for

    settings = load_settings(_config_path(args))
    for src in settings.sources:
        spider_for(src).validate(src)
    print(
        f"ok: {len(settings.sources)} sources, {len(settings.watchlists)} watchlists, {len(settings.topics)} topics, "
        f"{len(settings.channels)} channels; state {settings.state_url.split('@')[-1]}, index {settings.index.backend}"
    )
    return 0


def cmd_models(args: argparse.Namespace, rest: list[str]) -> int:
    from nlp.onnx_export import main

    return main(rest)


def cmd_export_labels(args: argparse.Namespace, rest: list[str]) -> int:
    from api.corrections import export_labels_main

    return export_labels_main(rest)


def cmd_topic_corpus(args: argparse.Namespace, rest: list[str]) -> int:
    from nlp.topic_corpus import main

    return main(rest)


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    from nlp.train import main

    return main(rest)


PASSTHROUGH = {"crawl": cmd_crawl, "classify": cmd_classify, "alerts": cmd_alerts, "models": cmd_models, "train": cmd_train,
               "export-labels": cmd_export_labels, "topic-corpus": cmd_topic_corpus}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yuqing", description="Public-opinion monitoring and early warning.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="scheduler, crawlers, worker and API on this machine")
    _config_arg(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help="the bundled multilingual incident, through the real pipeline")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--speed", type=float, default=60.0, help="scenario minutes per real minute (default 60)")
    p.add_argument("--data-dir", default="data/demo")
    p.add_argument("--models-dir", default=None)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("worker", help="classify and index what the inbox holds")
    _config_arg(p)
    p.add_argument("--once", action="store_true", help="stop when the inbox is empty")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("crawler", help="the crawler role: run the crawls the scheduler requests")
    _config_arg(p)
    p.add_argument("--slots", type=int, default=2, help="crawls at a time (each its own process)")
    p.set_defaults(func=cmd_crawler)
    p = sub.add_parser("scheduler", help="the scheduler role (one leader runs jobs)")
    _config_arg(p)
    p.set_defaults(func=cmd_scheduler)
    p = sub.add_parser("api", help="the API role")
    _config_arg(p)
    p.set_defaults(func=cmd_api)
    p = sub.add_parser("search", help="search the index")
    _config_arg(p)
    p.add_argument("query")
    p.add_argument("--hours", type=float, default=None, help="only the last N hours")
    p.add_argument("--lang", action="append")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one Post per line")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("token", help="create an API token")
    _config_arg(p)
    p.add_argument("name")
    p.add_argument("--role", default="viewer", choices=["viewer", "analyst", "duty_officer", "admin"])
    p.set_defaults(func=cmd_token)
    p = sub.add_parser("check-config", help="validate the configuration file")
    _config_arg(p)
    p.set_defaults(func=cmd_check)
    for name, helptext in (
        ("crawl", "crawl one source now: yuqing crawl [--config FILE] SOURCE [--json]"),
        ("classify", "classify JSONL posts: yuqing classify [--model DIR] [--topics FILE] < in > out"),
        ("alerts", "list alerts; `yuqing alerts backtest --series FILE.csv`"),
        ("models", "`yuqing models export-onnx DIR | checksum DIR | verify DIR`"),
        ("train", "`yuqing train --config train.yaml`"),
        ("export-labels", "analysts' corrections as training JSONL: yuqing export-labels [--task ...] [--out FILE]"),
        ("topic-corpus", "unlabelled posts for topic expansion: yuqing topic-corpus --input posts.jsonl --out DIR"),
    ):
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # commands owned by a stage parse their own arguments (their contracts are stable)
    idx = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    try:
        if idx is not None and argv[idx] in PASSTHROUGH:
            args = parser.parse_args(argv[: idx + 1])
            if argv[idx] != "crawl":  # Scrapy installs its own log handler, at the source's level
                _logging(args.verbose)
            return PASSTHROUGH[argv[idx]](args, argv[idx + 1 :])
        args = parser.parse_args(argv)
        _logging(args.verbose)
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"yuqing: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # their INFO lines say nothing an operator acts on
        for name in ("alembic", "apscheduler.executors", "apscheduler.scheduler", "httpx", "scrapy"):
            logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
