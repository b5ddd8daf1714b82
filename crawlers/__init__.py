"""Yuqing's collector: a Scrapy project that turns public sources into `Post` records in the
durable inbox.

Layout (Scrapy's `startproject` shape, as an import package):

- `settings.py`     Scrapy settings: politeness (robots.txt, AutoThrottle, retries), the ordered
                    middlewares and pipelines.
- `items.py`        `PostItem`, what a spider extracts before normalisation.
- `spiders/`        `feed` (RSS 1.0/2.0, Atom) and `html` (listing -> articles) spiders, one
                    class per source kind, configured by a `SourceConfig` at run time.
- `middlewares.py`  conditional GET (ETag / Last-Modified from the source cursor), charset
                    repair (pages whose declared charset is wrong), clear per-URL error reports.
- `pipelines.py`    normalise -> match -> inbox, in that order.
- `run.py`          the entry points: `crawl()` in-process, `python -m crawlers.run`, and
                    `crawl_in_subprocess()` (Twisted's reactor cannot restart, so the scheduler
                    runs every crawl in a fresh process).

Helpers that do not need Scrapy (`dates`, `extract`, `matching`, `state`, `context`) are plain
modules so the tests and the benchmark can exercise them without a reactor.
"""
