"""Scrapy settings for Yuqing's crawlers.

`crawlers.run` loads this module and then applies per-source overrides from
`SourceConfig.options` (see `crawlers.run.scrapy_settings`). Why these values:

- robots.txt is obeyed by default (an agency's monitoring service must be a polite guest); a
  source may opt out explicitly with `options.obey_robots: false`.
- AutoThrottle adapts the delay to each site's latency, with at most a few parallel requests per
  domain, so a burst of new articles never hammers a small government site.
- Retries cover transient failures (timeouts, 5xx, 429) with Scrapy's retry middleware; after the
  last try the spider's errback reports the URL and the reason, and the run goes on.
- The telnet console and the remote-control server are off: crawls run unattended in
  short-lived processes and must not open ports.
"""

BOT_NAME = "yuqing"
SPIDER_MODULES = ["crawlers.spiders"]
NEWSPIDER_MODULE = "crawlers.spiders"

USER_AGENT = "YuqingMonitor/0.1 (+public-opinion monitoring; obeys robots.txt)"
ROBOTSTXT_OBEY = True

# politeness
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
DOWNLOAD_DELAY_JITTER = 0.5
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0

# robustness
DOWNLOAD_TIMEOUT = 30
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 10
# a page bigger than this is not an article or a feed: it is refused and reported rather than
# fed to the extractors (per source: options.max_size)
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024

# the incremental cursor lives in the state database; no HTTP cache, no cookies across runs
HTTPCACHE_ENABLED = False
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19's remote-control extension opens an HTTP port that can run code in the crawler;
# unattended crawls of untrusted sites have no use for it
REMOTE_CONTROL_ENABLED = False

DOWNLOADER_MIDDLEWARES = {
    # before Scrapy's HttpProxyMiddleware (750), which applies the proxy it sets
    "crawlers.middlewares.SourceProxyMiddleware": 540,
    # before Scrapy's own (lower = closer to the engine): sees the request last-but-one and the
    # response after decompression and redirects
    "crawlers.middlewares.ConditionalGetMiddleware": 560,
    "crawlers.middlewares.CharsetRepairMiddleware": 570,
}
SPIDER_MIDDLEWARES = {
    "crawlers.middlewares.ParseErrorMiddleware": 45,
    "crawlers.middlewares.CaptureMiddleware": 60,
}
ITEM_PIPELINES = {
    "crawlers.pipelines.NormalisePipeline": 100,
    "crawlers.pipelines.MatchPipeline": 200,
    "crawlers.pipelines.InboxPipeline": 300,
}

# unmatched posts are dropped by design: not worth a warning each
DEFAULT_DROPITEM_LOG_LEVEL = "DEBUG"
LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
