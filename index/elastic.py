"""ElasticStore: the scaled-out index on Elasticsearch (official client and its bulk helpers).

Layout. Time-based indices `<prefix>-000001`, `-000002`, ... are created from one index template
and rolled over by ILM (`<prefix>-policy`: hot rollover at 7 days or 30 GB per primary shard,
delete after the retention period; see deploy/elasticsearch.md). Writes go to the write alias
`<prefix>-write`; every read goes to the read alias `<prefix>`, which the template attaches to
each new index. Mappings are strict and cover every field: keywords for filters and facets
(`doc_values`), `published_at` as `date`, and `body` (the title and the text, each folded in
Python by `yuqing.text.fold`) as `standard` text with sub-fields `zh` (`cjk`), `ar` (`arabic`)
and `en` (`english`) and a `raw` keyword sub-field. The Post itself is kept in `post`
(stored, not indexed). `index.analysis` decides, for each query term, which sub-field is
searched (`match_phrase`), exactly as the SQLite backend does, so both find the same posts.

Document ids are the post's canonical id and the bulk action is `index`, not `create`:
re-indexing a post must *replace* it (the worker re-classifies, a re-crawl brings new
engagement counts), which `create` would reject as a conflict and silently keep the stale copy.
Because `index` through the write alias only replaces a copy that lives in the *current* write
index, each bulk first asks the read alias which of its ids already exist and sends those to the
concrete index that holds them; the rest go to the write alias. That keeps one copy per id
across rollovers.

Failures. The transport retries 429/502/503/504 and timeouts with exponential backoff; the bulk
helper retries items rejected with 429. A cluster that cannot be reached raises
`StoreUnavailable` (the worker leaves the posts in the inbox and tries again later); an item
the cluster refuses is reported in its `IndexResult` (429/5xx retryable, a mapping error not).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers
from elasticsearch import ConnectionError as EsConnectionError

from index import analysis as an
from index.base import Bucket, Hit, IndexResult, Query, SearchPage, StoreUnavailable, StoryCount, TermsField, story_ranges
from index.common import (
    INTERVALS_MS,
    decode_cursor,
    encode_cursor,
    engagement_of,
    from_ms,
    rumor_sort_of,
    time_range_ms,
    to_ms,
)
from yuqing.config import ElasticConfig
from yuqing.records import Post
from yuqing.text import fold

# Query field -> document field
_FACET_FIELDS: dict[str, str] = {
    "sentiment": "sentiment",
    "topic": "topics",
    "source": "source",
    "platform": "platform",
    "lang": "lang",
    "author": "author",
    "watchlist": "watchlists",
    "source_tier": "source_tier",
    "term": "terms",
}
_SORTS: dict[str, list[Any]] = {
    "time": [{"published_at": "desc"}, {"id": "desc"}],
    "engagement": [{"engagement": "desc"}, {"published_at": "desc"}, {"id": "desc"}],
    "rumor": [{"rumor_sort": "desc"}, {"published_at": "desc"}, {"id": "desc"}],
    "relevance": [{"_score": "desc"}, {"published_at": "desc"}, {"id": "desc"}],
}
_CALENDAR = {"1m": "minute", "1h": "hour", "1d": "day"}
_FIXED = {"5m": "5m", "15m": "15m"}
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
# sub-buckets per time bucket for histogram(split_by=...): every value of the field
_SPLIT_SIZE = 10_000


def mappings() -> dict[str, Any]:
    """Strict mappings for every field of the document (see `_doc`)."""
    kw = {"type": "keyword"}
    return {
        "dynamic": "strict",
        "properties": {
            "id": kw,
            "url": {"type": "keyword", "index": False},
            "source": kw,
            "platform": kw,
            "source_tier": kw,
            "lang": kw,
            "author": kw,
            "published_at": {"type": "date", "format": "epoch_millis"},
            "fetched_at": {"type": "date", "format": "epoch_millis"},
            "sentiment": kw,
            "topics": kw,
            "watchlists": kw,
            "matched_terms": kw,
            "terms": kw,
            "rumor": {"type": "float"},
            "rumor_sort": {"type": "float"},
            "engagement": {"type": "long"},
            "text_hash": kw,
            "cluster_id": kw,
            "thread_id": kw,
            "body": {
                "type": "text",
                "analyzer": "standard",
                "fields": {
                    "zh": {"type": "text", "analyzer": "cjk"},
                    "ar": {"type": "text", "analyzer": "arabic"},
                    "en": {"type": "text", "analyzer": "english"},
                    "raw": {"type": "keyword", "ignore_above": 256},
                },
            },
            "post": {"type": "object", "enabled": False},
        },
    }


class ElasticStore:
    """`index.base.Store` on Elasticsearch (see the module docstring).

    `client`: an `Elasticsearch` client to use instead of one built from `cfg` (tests pass one
    with a content-type shim for osmem). `arabic_analyzer`: the analyzer of `body.ar`;
    `"arabic"` in production, another only for servers that lack it (osmem). `lifecycle`:
    install the ILM policy (False for servers without ILM; then run retention with
    `delete_by_query`). `retention_days`: the ILM delete phase (privacy.retention_days).
    `max_retries`: transport retries (429/502/503/504, timeouts; backoff 0.5 s doubling to
    30 s) and bulk-helper retries of items rejected with 429 (backoff from `bulk_backoff_s`).
    `client_options`: extra keyword arguments for the `Elasticsearch` client built from `cfg`.
    """

    def __init__(
        self,
        cfg: ElasticConfig,
        *,
        client: Elasticsearch | None = None,
        arabic_analyzer: str = "arabic",
        lifecycle: bool = True,
        retention_days: int = 180,
        rollover_max_age: str = "7d",
        chunk_size: int = 500,
        max_retries: int = 5,
        bulk_backoff_s: float = 0.5,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.prefix = cfg.index_prefix
        self.read_alias = cfg.index_prefix
        self.write_alias = f"{cfg.index_prefix}-write"
        self.policy = f"{cfg.index_prefix}-policy"
        self.arabic_analyzer = arabic_analyzer
        self.lifecycle = lifecycle
        self.retention_days = retention_days
        self.rollover_max_age = rollover_max_age
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.bulk_backoff_s = bulk_backoff_s
        if client is None:
            options: dict[str, Any] = {
                "api_key": cfg.api_key.get_secret_value() if cfg.api_key else None,
                "verify_certs": cfg.verify_certs,
                "request_timeout": cfg.timeout,
                "max_retries": max_retries,
                "retry_on_status": (429, 502, 503, 504),
                "retry_on_timeout": True,
                "retry_backoff_base": 0.5,
                "retry_backoff_cap": 30.0,
            }
            options.update(client_options or {})
            client = Elasticsearch(cfg.url, **options)
        self.es = client

    # -- schema -----------------------------------------------------------------------------
    def template(self) -> dict[str, Any]:
        m = mappings()
        m["properties"]["body"]["fields"]["ar"]["analyzer"] = self.arabic_analyzer
        settings: dict[str, Any] = {"number_of_shards": 1, "refresh_interval": "1s"}
        if self.lifecycle:
            settings["index.lifecycle.name"] = self.policy
            settings["index.lifecycle.rollover_alias"] = self.write_alias
        return {"settings": settings, "mappings": m, "aliases": {self.read_alias: {}}}

    def lifecycle_policy(self) -> dict[str, Any]:
        return {
            "phases": {
                "hot": {
                    "actions": {
                        "rollover": {"max_age": self.rollover_max_age, "max_primary_shard_size": "30gb"}
                    }
                },
                "delete": {"min_age": f"{self.retention_days}d", "actions": {"delete": {}}},
            }
        }

    def ensure_schema(self) -> None:
        with self._unavailable("create the index template"):
            if self.lifecycle:
                self.es.ilm.put_lifecycle(name=self.policy, policy=self.lifecycle_policy())
            self.es.indices.put_index_template(
                name=self.prefix, index_patterns=[f"{self.prefix}-0*"], template=self.template(), priority=200
            )
            if not self.es.indices.exists_alias(name=self.write_alias):
                try:
                    self.es.indices.create(
                        index=f"{self.prefix}-000001", aliases={self.write_alias: {"is_write_index": True}}
                    )
                except ApiError as e:
                    if "already_exists" not in str(e):
                        raise

    def rollover(self) -> str:
        """Roll the write alias over now (ILM does this on schedule); returns the new index."""
        with self._unavailable("roll over"):
            return str(self.es.indices.rollover(alias=self.write_alias)["new_index"])

    def drop(self) -> None:
        """Delete every index, the template and the policy of this prefix (tests, teardown)."""
        with self._unavailable("drop the indices"):
            # by name: clusters refuse wildcard deletes (action.destructive_requires_name)
            names = list(self.es.indices.get(index=f"{self.prefix}-0*", allow_no_indices=True, ignore_unavailable=True))
            for name in names:
                self.es.options(ignore_status=404).indices.delete(index=name)
            self.es.options(ignore_status=404).indices.delete_index_template(name=self.prefix)
            if self.lifecycle:
                self.es.options(ignore_status=404).ilm.delete_lifecycle(name=self.policy)

    def ping(self) -> bool:
        try:
            return bool(self.es.ping())
        except Exception:  # noqa: BLE001 - readiness: any failure is "not ready"
            return False

    def refresh(self) -> None:
        with self._unavailable("refresh"):
            self.es.indices.refresh(index=self.read_alias)

    def close(self) -> None:
        self.es.close()

    # -- writing ----------------------------------------------------------------------------
    @staticmethod
    def document(p: Post) -> dict[str, Any]:
        c = p.classification
        return {
            "id": p.id,
            "url": p.url,
            "source": p.source,
            "platform": p.platform,
            "source_tier": p.source_tier.value,
            "lang": p.lang,
            "author": p.author.id,
            "published_at": to_ms(p.published_at),
            "fetched_at": to_ms(p.fetched_at),
            "sentiment": c.sentiment if c else None,
            "topics": list(dict.fromkeys(t.topic for t in c.topics)) if c else [],
            "watchlists": list(dict.fromkeys(p.watchlists)),
            "matched_terms": p.matched_terms,
            "terms": an.display_terms(p.title, p.text),
            "rumor": c.rumor if c else None,
            "rumor_sort": rumor_sort_of(p),
            "engagement": engagement_of(p),
            "text_hash": p.text_hash,
            "cluster_id": p.cluster_id,
            "thread_id": p.thread_id,
            "body": [fold(x) for x in (p.title, p.text) if x],
            "post": p.model_dump(mode="json"),
        }

    def _existing(self, ids: list[str]) -> dict[str, str]:
        """id -> concrete index of the copies that already exist (any generation)."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            res = self.es.search(
                index=self.read_alias, query={"ids": {"values": chunk}}, source=False, size=len(chunk)
            )
            for h in res["hits"]["hits"]:
                out[h["_id"]] = h["_index"]
        return out

    def bulk_index(self, posts: Sequence[Post]) -> list[IndexResult]:
        results: dict[int, IndexResult] = {}
        docs: dict[str, dict[str, Any]] = {}
        for i, p in enumerate(posts):
            try:
                for value in (p.title, p.text):
                    if value:
                        value.encode("utf-8")  # a lone surrogate would fail the whole request
                docs[p.id] = self.document(p)
            except Exception as e:  # noqa: BLE001 - one bad post must not sink the batch
                results[i] = IndexResult(p.id, False, f"cannot index: {type(e).__name__}: {e}", retryable=False)
        per_id: dict[str, IndexResult] = {}
        if docs:
            with self._unavailable("index posts"):
                where = self._existing(list(docs))
                actions = (
                    {"_op_type": "index", "_index": where.get(doc_id, self.write_alias), "_id": doc_id, "_source": d}
                    for doc_id, d in docs.items()
                )
                for ok, item in helpers.streaming_bulk(
                    self.es,
                    actions,
                    chunk_size=self.chunk_size,
                    raise_on_error=False,
                    raise_on_exception=False,
                    max_retries=self.max_retries,
                    initial_backoff=self.bulk_backoff_s,
                    max_backoff=30,
                ):
                    info = item.get("index", item)
                    doc_id = str(info.get("_id"))
                    if ok:
                        per_id[doc_id] = IndexResult(doc_id, True)
                        continue
                    status = int(info.get("status", 0) or 0)
                    err = info.get("error") or info.get("exception") or "failed"
                    if isinstance(err, dict):
                        err = f"{err.get('type')}: {err.get('reason')}"
                    per_id[doc_id] = IndexResult(
                        doc_id, False, f"{status or 'transport'}: {err}", retryable=status in _RETRYABLE_STATUS or status == 0
                    )
        out: list[IndexResult] = []
        for i, p in enumerate(posts):
            if i in results:
                out.append(results[i])
            elif p.id in per_id:
                out.append(per_id[p.id])
            else:
                out.append(IndexResult(p.id, False, "no answer for this item", retryable=True))
        return out

    def delete_by_query(self, query: Query) -> int:
        body = self._query(query)
        with self._unavailable("delete posts"):
            res = self.es.delete_by_query(
                index=self.read_alias, query=body, refresh=True, conflicts="proceed", wait_for_completion=True
            )
        return int(res.get("deleted", 0))

    # -- reading ----------------------------------------------------------------------------
    def get(self, doc_id: str) -> Post | None:
        with self._unavailable("read a post"):
            res = self.es.search(index=self.read_alias, query={"ids": {"values": [doc_id]}}, size=1, source=["post"])
        hits = res["hits"]["hits"]
        return Post.model_validate(hits[0]["_source"]["post"]) if hits else None

    def _query(self, q: Query, node: an.Node | None = None) -> dict[str, Any]:
        """The bool query for every filter and the text of `q` (text scored, filters not)."""
        filters: list[dict[str, Any]] = []
        start, end = time_range_ms(q)
        if start is not None or end is not None:
            rng: dict[str, Any] = {"format": "epoch_millis"}
            if start is not None:
                rng["gte"] = start
            if end is not None:
                rng["lt"] = end
            filters.append({"range": {"published_at": rng}})
        for values, fld in (
            (q.sources, "source"),
            (q.platforms, "platform"),
            (q.langs, "lang"),
            (q.sentiments, "sentiment"),
            (q.authors, "author"),
            (q.topics, "topics"),
            (q.watchlists, "watchlists"),
        ):
            if values is not None:
                filters.append({"terms": {fld: values}} if values else {"match_none": {}})
        if q.rumor_min is not None or q.rumor_max is not None:
            r: dict[str, Any] = {}
            if q.rumor_min is not None:
                r["gte"] = q.rumor_min
            if q.rumor_max is not None:
                r["lte"] = q.rumor_max
            filters.append({"range": {"rumor": r}})
        node = an.parse(q.text) if node is None else node
        body: dict[str, Any] = {"filter": filters}
        if node != an.TRUE:
            body["must"] = [_text_query(node)]
        return {"bool": body}

    def count(self, query: Query) -> int:
        with self._unavailable("count"):
            return int(self.es.count(index=self.read_alias, query=self._query(query))["count"])

    def search(self, query: Query) -> SearchPage:
        node = an.parse(query.text)
        sort = query.sort
        sort_spec = _SORTS["time" if sort == "relevance" and node == an.TRUE else sort]
        after = decode_cursor(query.cursor, sort) if query.cursor else None
        kwargs: dict[str, Any] = {
            "index": self.read_alias,
            "query": self._query(query, node),
            "sort": sort_spec,
            "size": query.size + 1 if query.size else 0,
            "track_total_hits": True,
            "source": ["post"],
        }
        if after is not None:
            kwargs["search_after"] = after[1:] if (sort == "relevance" and node == an.TRUE) else after
        with self._unavailable("search"):
            res = self.es.search(**kwargs)
        raw = res["hits"]["hits"]
        more = len(raw) > query.size
        raw = raw[: query.size]
        terms = an.positive_terms(node) if query.highlight else []
        scored = sort == "relevance" and node != an.TRUE
        hits: list[Hit] = []
        for h in raw:
            post = Post.model_validate(h["_source"]["post"])
            hl: dict[str, list[str]] = {}
            if terms:
                for name, value in (("title", post.title), ("text", post.text)):
                    if value:
                        frags = an.highlight(value, terms)
                        if frags:
                            hl[name] = frags
            hits.append(Hit(post=post, score=float(h["sort"][0]) if scored else None, highlights=hl))
        next_cursor = None
        if more and raw:
            values = list(raw[-1]["sort"])
            if sort == "relevance" and not scored:
                values = [0.0, *values]
            next_cursor = encode_cursor(sort, values)
        return SearchPage(total=int(res["hits"]["total"]["value"]), hits=hits, next_cursor=next_cursor)

    def histogram(self, query: Query, interval: str, tz: str, split_by: TermsField | None = None) -> list[Bucket]:
        if interval not in INTERVALS_MS:
            raise ValueError(f"interval must be one of {sorted(INTERVALS_MS)}, got {interval!r}")
        zone = ZoneInfo(tz)
        agg: dict[str, Any] = {"field": "published_at", "time_zone": tz, "min_doc_count": 0}
        if interval in _CALENDAR:
            agg["calendar_interval"] = _CALENDAR[interval]
        else:
            agg["fixed_interval"] = _FIXED[interval]
        aggs: dict[str, Any] = {"h": {"date_histogram": agg}}
        if split_by is not None:
            aggs["h"]["aggs"] = {"s": {"terms": {"field": _FACET_FIELDS[split_by], "size": _SPLIT_SIZE}}}
        with self._unavailable("aggregate"):
            res = self.es.search(index=self.read_alias, query=self._query(query), size=0, aggs=aggs)
        out: list[Bucket] = []
        for b in res["aggregations"]["h"]["buckets"]:
            split = {}
            if split_by is not None:
                split = {str(s["key"]): int(s["doc_count"]) for s in b["s"]["buckets"]}
            out.append(Bucket(start=from_ms(int(b["key"]), zone), count=int(b["doc_count"]), split=dict(sorted(split.items()))))
        return out

    def stories(self, query: Query, edges: Sequence[datetime]) -> list[StoryCount]:
        """One search: a `filters` aggregation with a range per edge pair, each with the
        distinct cluster ids (`cardinality` at its highest precision_threshold, where
        Elasticsearch counts a set of hashes exactly; above 40,000 stories per range it
        becomes the HyperLogLog estimate) plus the posts with no cluster id (each its own story)."""
        ranges = story_ranges(query, edges)
        named = {
            str(i): {"range": {"published_at": {"format": "epoch_millis", "gte": to_ms(lo), "lt": to_ms(hi)}}}
            for i, (_, _, lo, hi) in enumerate(ranges)
        }
        aggs = {
            "r": {
                "filters": {"filters": named},
                "aggs": {
                    "c": {"cardinality": {"field": "cluster_id", "precision_threshold": 40000}},
                    "m": {"filter": {"bool": {"must_not": [{"exists": {"field": "cluster_id"}}]}}},
                },
            }
        }
        with self._unavailable("aggregate"):
            res = self.es.search(index=self.read_alias, query=self._query(query), size=0, aggs=aggs)
        buckets = res["aggregations"]["r"]["buckets"]
        out = []
        for i, (a, b, _, _) in enumerate(ranges):
            bk = buckets[str(i)]
            out.append(
                StoryCount(start=a, end=b, posts=int(bk["doc_count"]), stories=int(bk["c"]["value"]) + int(bk["m"]["doc_count"]))
            )
        return out

    def terms(self, query: Query, field: TermsField, size: int = 10) -> list[tuple[str, int]]:
        if size <= 0:
            return []
        fld = _FACET_FIELDS[field]
        aggs = {
            "t": {
                "terms": {
                    "field": fld,
                    "size": size,
                    "shard_size": max(size * 20, 1000),
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                }
            }
        }
        with self._unavailable("aggregate"):
            res = self.es.search(index=self.read_alias, query=self._query(query), size=0, aggs=aggs)
        return [(str(b["key"]), int(b["doc_count"])) for b in res["aggregations"]["t"]["buckets"]]

    # -- errors -----------------------------------------------------------------------------
    def _unavailable(self, what: str) -> "_Unavailable":
        return _Unavailable(self, what)


class _Unavailable:
    """Turns "cannot reach the cluster" (connection errors, timeouts, 5xx after the
    transport's retries) into `StoreUnavailable`; other API errors propagate as they are."""

    def __init__(self, store: ElasticStore, what: str) -> None:
        self.store = store
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: Any) -> bool:
        if e is None:
            return False
        if isinstance(e, (EsConnectionError, TransportError)) and not isinstance(e, ApiError):
            raise StoreUnavailable(f"Elasticsearch at {self.store.cfg.url} cannot {self.what}: {e}") from e
        if isinstance(e, ApiError) and not isinstance(e, NotFoundError) and int(getattr(e, "status_code", 0) or 0) >= 500:
            raise StoreUnavailable(f"Elasticsearch at {self.store.cfg.url} cannot {self.what}: {e}") from e
        if isinstance(e, NotFoundError) and "index_not_found" in str(e):
            raise StoreUnavailable(
                f"Elasticsearch at {self.store.cfg.url} has no index {self.store.read_alias!r}: run ensure_schema()"
            ) from e
        return False


def _phrase(t: an.Term) -> dict[str, Any]:
    fld = "body" if t.field == "std" else f"body.{t.field}"
    return {"match_phrase": {fld: {"query": t.text}}}


def _text_query(node: an.Node) -> dict[str, Any]:
    if isinstance(node, an.Term):
        return _phrase(node)
    if isinstance(node, an.Const):
        return {"match_all": {}} if node.value else {"match_none": {}}
    if isinstance(node, an.Not):
        return {"bool": {"must_not": [_text_query(node.item)]}}
    if isinstance(node, an.Or):
        return {"bool": {"should": [_text_query(i) for i in node.items], "minimum_should_match": 1}}
    if isinstance(node, an.And):
        must = [_text_query(i) for i in node.items if not isinstance(i, an.Not)]
        must_not = [_text_query(i.item) for i in node.items if isinstance(i, an.Not)]
        body: dict[str, Any] = {}
        if must:
            body["must"] = must
        if must_not:
            body["must_not"] = must_not
        return {"bool": body}
    raise TypeError(node)


__all__ = ["ElasticStore", "mappings"]
