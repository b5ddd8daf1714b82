"""One spider class per source kind; `spider_for(source)` picks it.

`SourceConfig.kind` is `feed` or `html` today. The other kinds are chosen by `options.spider`
(`forum`, `discourse`, `api`, `telegram`) or implied by `options.preset` (`phpbb`, `discuz` ->
forum; `discourse`; `mastodon`, `reddit`, `weibo` -> api; `telegram`), so they work before the
configuration schema names them as kinds (and keep working after: a kind with the same name
maps to the same spider).
"""

from __future__ import annotations

from crawlers.spiders.api import ApiSpider
from crawlers.spiders.base import SourceSpider
from crawlers.spiders.discourse import DiscourseSpider
from crawlers.spiders.feed import FeedSpider
from crawlers.spiders.forum import ForumSpider
from crawlers.spiders.html import HtmlSpider
from crawlers.spiders.telegram import TelegramSpider
from yuqing.config import ConfigError, SourceConfig

SPIDERS: dict[str, type[SourceSpider]] = {
    "feed": FeedSpider,
    "html": HtmlSpider,
    "forum": ForumSpider,
    "discourse": DiscourseSpider,
    "api": ApiSpider,
    "json": ApiSpider,
    "telegram": TelegramSpider,
}
PRESET_SPIDER = {
    "phpbb": "forum",
    "discuz": "forum",
    "generic": "forum",
    "discourse": "discourse",
    "mastodon": "api",
    "reddit": "api",
    "weibo": "api",
    "telegram": "telegram",
}


def spider_for(source: SourceConfig) -> type[SourceSpider]:
    """The spider class for a source; ConfigError (naming the source) for an unknown choice."""
    name = source.options.get("spider") or PRESET_SPIDER.get(str(source.options.get("preset"))) or source.kind
    if name not in SPIDERS:
        raise ConfigError(
            f"source {source.name!r}: unknown spider {name!r} (options.spider or options.preset; "
            f"known: {', '.join(sorted(set(SPIDERS) | set(PRESET_SPIDER)))})"
        )
    return SPIDERS[name]


__all__ = ["SPIDERS", "SourceSpider", "spider_for"]
