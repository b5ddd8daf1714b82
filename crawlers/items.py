"""What a spider extracts from a page, before normalisation.

Spiders fill what the source gives and nothing else; `crawlers.pipelines.NormalisePipeline`
turns a `PostItem` into the shared `yuqing.records.Post` (doc id, canonical URL, text hash,
pseudonymised author, source tier). Keeping the raw platform author id out of `Post` is the
point of this split: it exists only in memory, between the spider and the normaliser.
"""

from __future__ import annotations

import scrapy


class PostItem(scrapy.Item):
    url = scrapy.Field()  # as fetched; canonicalised by the normaliser
    platform_id = scrapy.Field()  # the platform's own id (feed guid, forum post id)
    title = scrapy.Field()
    text = scrapy.Field()  # plain text (never HTML)
    published_at = scrapy.Field()  # aware datetime already resolved with the source's zone, or None
    lang = scrapy.Field()  # what the page or feed declares (the source's own `lang` wins)
    author_id = scrapy.Field()  # platform user id or name: pseudonymised, then forgotten
    author_name = scrapy.Field()
    author_followers = scrapy.Field()
    author_verified = scrapy.Field()
    engagement = scrapy.Field()  # dict: reposts, comments, likes, views
    reply_to = scrapy.Field()  # doc id of the post this one answers
    repost_of = scrapy.Field()  # doc id of the post this one shares
    thread_id = scrapy.Field()  # doc id of the thread's first post
    doc_key = scrapy.Field()  # identity when the URL is not unique per post (posts sharing a page)
    position = scrapy.Field()  # 1-based place in its thread (forum replies) -> Post.position
    context_match = scrapy.Field()  # crawlers.matching.Match of the thread / post this one answers
    via = scrapy.Field()  # how the text was obtained: feed | article | selectors | fallback
    captures = scrapy.Field()  # crawlers.evidence.Capture of each page the post came from (evidence)
