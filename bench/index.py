"""Index benchmark (issue 4): SQLite bulk rate and p50/p95 of the dashboard's query mix on
generated multilingual posts, plus the same figures on osmem-server for reference.

    .venv/bin/python -m bench.index                      # 1M posts, 400 queries, osmem on 50k
    .venv/bin/python -m bench.index --posts 100000 --osmem 0

Corpus: Chinese, English and Arabic posts (50/30/20 %) of 15-60 words drawn from Zipf-like
vocabularies (~30k Chinese two/three-character words, ~30k English words with inflections,
~15k Arabic words with clitics), so word frequencies look like real text: the query terms are
picked by their measured document frequency, most under 1 % of posts and a few near 10 %.
Posts spread over 60 days, 300 sources, 5 platforms, 50k authors; ids are 32 hex digits like
`yuqing.ids.doc_id`. `--order arrival` (default, the figure of record since session 3) indexes
them roughly in published order, up to 6 h out of order, as the worker receives them from
crawlers and as a replay of the inbox delivers them; `--order random` spreads them over the 60
days in any order: the worst case for a table clustered by time (a backfill of a shuffled dump),
for reference, not the target's figure. They differ only in write locality: in random order
each transaction dirties leaves all over every rid-keyed B-tree instead of their right edges
(at 1M posts a 4.8 GB file instead of 3.5 GB, ~30-50 us more writer CPU a post).

Indexing: `--batch` posts per `store.bulk_index` call (default 50,000), each call one
transaction in the store's normal, durable mode (WAL, synchronous=NORMAL): a call's posts are
committed before it returns, as the worker needs. A bulk load wants large calls: per post, a
50,000-post transaction writes each touched B-tree page (the random `id` and `author` index
leaves above all) once where 1,000-post ones write it up to fifty times, so the writer's CPU
per post grows far less with the file (docs/decisions.md, "SQLite bulk load").
Each batch is generated before its call and only the calls are timed, so the rates leave out
generation (the CPU figures too); the analysis worker process is idle while a batch is
generated.

Query mix, one process, one client, timed per call:
- 70 % search: one to three terms of one language, a 7-day time filter and one facet filter
  (source, platform, sentiment or language), top 20 by time (`store.search`);
- 30 % the dashboard's stats for such a query: hourly counts x sentiment over the 7 days
  (`histogram("1h", split_by="sentiment")`) and the top 10 sources (`terms("source", 10)`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.base import Query, Store  # noqa: E402
from yuqing.records import Author, Classification, Engagement, Post, TopicScore  # noqa: E402

UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 60
SENTIMENTS = ("negative", "neutral", "positive")
TOPICS = ("flood", "health", "traffic", "policy", "education", "safety")

# ---------------------------------------------------------------------------------------------
# vocabularies


def _zh_vocab(rnd: random.Random, n: int) -> list[str]:
    # Simplified text: characters OpenCC's t2s would leave alone (Traditional posts cost
    # ~0.2 ms more each, for the conversion)
    from yuqing.text import _t2s_triggers

    triggers = _t2s_triggers()
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 6000) if chr(c) not in triggers][:3500]
    rnd.shuffle(chars)
    out: set[str] = set()
    while len(out) < n:
        k = 2 if rnd.random() < 0.8 else 3
        # a Zipf-ish pick of characters, so common characters recur across words
        out.add("".join(chars[min(int(rnd.paretovariate(0.9)) - 1, len(chars) - 1)] for _ in range(k)))
    words = sorted(out)
    rnd.shuffle(words)
    return words


def _en_vocab(rnd: random.Random, n: int) -> list[str]:
    onset = "b c d f g h j k l m n p r s t v w bl br cl cr dr fl fr gl gr pl pr sl sm sn st str tr".split()
    nucleus = "a e i o u ai ea ee oo ou".split()
    coda = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]
    out: set[str] = set()
    while len(out) < n:
        w = "".join(rnd.choice(onset) + rnd.choice(nucleus) + rnd.choice(coda) for _ in range(rnd.choice((1, 2, 2, 3))))
        out.add(w)
    words = sorted(out)
    rnd.shuffle(words)
    return words


def _ar_vocab(rnd: random.Random, n: int) -> list[str]:
    letters = "بتثجحخدذرزسشصضطظعغفقكلمنهوي"
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rnd.choice(letters) for _ in range(rnd.choice((3, 4, 4, 5)))))
    words = sorted(out)
    rnd.shuffle(words)
    return words


class Corpus:
    """Deterministic generator; `words(lang)` returns the vocabulary in frequency order."""

    def __init__(self, seed: int = 42) -> None:
        rnd = random.Random(seed)
        self.vocab = {"zh": _zh_vocab(rnd, 30_000), "en": _en_vocab(rnd, 30_000), "ar": _ar_vocab(rnd, 15_000)}
        # Zipf(s=1.05) cumulative weights per language
        self.cum: dict[str, list[float]] = {}
        for lang, words in self.vocab.items():
            acc, cum = 0.0, []
            for r in range(1, len(words) + 1):
                acc += 1.0 / r**1.05
                cum.append(acc)
            self.cum[lang] = cum
        self.sources = [f"src-{i:03d}" for i in range(300)]
        self.source_w = [1.0 / (i + 1) ** 0.8 for i in range(300)]

    def text(self, rnd: random.Random, lang: str) -> str:
        n = rnd.randint(15, 60)
        words = rnd.choices(self.vocab[lang], cum_weights=self.cum[lang], k=n)
        if lang == "en":
            words = [w + rnd.choice(("", "", "", "s", "ed", "ing")) for w in words]
        elif lang == "ar":
            words = [rnd.choice(("", "", "ال", "و", "وال")) + w + rnd.choice(("", "", "ة", "ات")) for w in words]
        if lang == "zh":
            out, i = [], 0
            while i < len(words):
                k = rnd.randint(3, 8)
                out.append("".join(words[i : i + k]))
                i += k
            return "，".join(out) + "。"
        return " ".join(words) + "."

    def posts(self, n: int, seed: int = 1, order: str = "random") -> Iterator[Post]:
        """`order="arrival"`: published times rise through the run with up to 6 h of disorder,
        as a crawler delivers them; "random": uniformly spread over the 60 days in any order
        (the worst case for a store clustered by time, e.g. a backfill from many sources)."""
        rnd = random.Random(seed)
        span = DAYS * 86_400
        for i in range(n):
            lang = rnd.choices(("zh", "en", "ar"), (50, 30, 20))[0]
            if order == "arrival":
                t = START + timedelta(seconds=max(0, int(span * i / n) - rnd.randrange(6 * 3600)))
            else:
                t = START + timedelta(seconds=rnd.randrange(span))
            sent = rnd.choices(SENTIMENTS, (30, 50, 20))[0]
            yield Post(
                id=hashlib.sha256(f"bench:{i}".encode()).hexdigest()[:32],  # as yuqing.ids.doc_id
                source=rnd.choices(self.sources, self.source_w)[0],
                platform=rnd.choice(("weibo", "web", "forum", "wechat", "x")),
                author=Author(id=f"a{rnd.randrange(50_000):05d}"),
                published_at=t,
                fetched_at=t + timedelta(minutes=3),
                lang=lang,
                text=self.text(rnd, lang),
                engagement=Engagement(likes=int(rnd.paretovariate(1.2)) - 1, reposts=rnd.randrange(5)),
                watchlists=["agency"] if rnd.random() < 0.7 else ["agency", "leaders"],
                classification=Classification(
                    sentiment=sent,
                    sentiment_scores={s: 0.8 if s == sent else 0.1 for s in SENTIMENTS},
                    topics=[TopicScore(topic=rnd.choice(TOPICS), score=0.8)],
                    rumor=round(rnd.random() ** 3, 3),
                    model="bench@1",
                ),
            )


# ---------------------------------------------------------------------------------------------
# measurement


def machine() -> str:
    """`bench.machine.describe()` plus what this benchmark also depends on: the load on the
    machine while it runs (others share it) and the SQLite library."""
    from bench.machine import describe

    load = "load " + " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "load unknown"
    return f"{describe()}; {load}; SQLite {sqlite3.sqlite_version}"


def doc_freq_terms(store: Store, corpus: Corpus, rnd: random.Random, total: int) -> dict[str, list[tuple[str, str, float]]]:
    """Candidate query terms with their measured document frequency, by band."""
    bands: dict[str, list[tuple[str, str, float]]] = {"rare": [], "frequent": []}
    for lang in ("zh", "en", "ar"):
        words = corpus.vocab[lang]
        probe = [words[i] for i in (list(range(0, 60)) + rnd.sample(range(60, 3000), 80))]
        for w in probe:
            df = store.count(Query(text=w, langs=None)) / total
            if 0.0005 <= df < 0.01:
                bands["rare"].append((lang, w, df))
            elif 0.06 <= df <= 0.14:
                bands["frequent"].append((lang, w, df))
    return bands


def query_mix(n: int, bands: dict[str, list[tuple[str, str, float]]], corpus: Corpus, rnd: random.Random) -> list[tuple[str, Query]]:
    out: list[tuple[str, Query]] = []
    for _ in range(n):
        lang = rnd.choice(("zh", "en", "ar"))
        k = rnd.choice((1, 1, 2, 3))
        pool_r = [w for lg, w, _ in bands["rare"] if lg == lang] or [w for _, w, _ in bands["rare"]]
        pool_f = [w for lg, w, _ in bands["frequent"] if lg == lang] or [w for _, w, _ in bands["frequent"]] or pool_r
        terms = [rnd.choice(pool_f) if rnd.random() < 0.15 else rnd.choice(pool_r) for _ in range(k)]
        text = " OR ".join(terms) if rnd.random() < 0.5 else " ".join(terms)
        day = rnd.randrange(DAYS - 7)
        start = START + timedelta(days=day)
        facet = rnd.choice(("source", "platform", "sentiment", "lang"))
        kw: dict[str, Any] = {
            "source": {"sources": [rnd.choices(corpus.sources[:50], corpus.source_w[:50])[0]]},
            "platform": {"platforms": [rnd.choice(("weibo", "web", "forum"))]},
            "sentiment": {"sentiments": ["negative"]},
            "lang": {"langs": [lang]},
        }[facet]
        q = Query(text=text, start=start, end=start + timedelta(days=7), size=20, **kw)
        out.append(("search" if rnd.random() < 0.7 else "stats", q))
    return out


def run_mix(store: Store, mix: list[tuple[str, Query]], tz: str = "Asia/Shanghai") -> dict[str, list[float]]:
    """Each query timed alone (wall clock), one after another, one client."""
    times: dict[str, list[float]] = {"search": [], "stats": [], "all": []}
    for kind, q in mix:
        t0 = time.perf_counter()
        if kind == "search":
            store.search(q)
        else:
            store.histogram(q.model_copy(update={"size": 0}), "1h", tz, split_by="sentiment")
            store.terms(q, "source", 10)
        dt = (time.perf_counter() - t0) * 1000
        times[kind].append(dt)
        times["all"].append(dt)
    return times


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def report(name: str, times: dict[str, list[float]]) -> None:
    for kind in ("search", "stats", "all"):
        xs = times[kind]
        print(f"  {name:8s} {kind:7s} n={len(xs):4d}  p50 {pct(xs, 50):8.1f} ms  p95 {pct(xs, 95):8.1f} ms  mean {statistics.fmean(xs) if xs else float('nan'):8.1f} ms")


def index_into(store: Store, corpus: Corpus, n: int, batch: int, order: str = "random") -> tuple[float, float]:
    """Bulk-index n posts; returns posts per wall-clock second and per CPU second of this
    process (generation excluded; the CPU figure is what a quiet core would give when the
    machine is shared; with --analysis-processes it leaves out the workers' CPU, so compare
    wall figures there)."""
    busy = 0.0
    cpu = 0.0
    buf: list[Post] = []
    done = 0
    last_print = time.monotonic()
    for p in corpus.posts(n, order=order):
        buf.append(p)
        if len(buf) >= batch:
            t0, c0 = time.perf_counter(), time.process_time()
            res = store.bulk_index(buf)
            busy += time.perf_counter() - t0
            cpu += time.process_time() - c0
            assert all(r.ok for r in res), next(r for r in res if not r.ok)
            done += len(buf)
            buf = []
            if time.monotonic() - last_print > 15:
                print(f"    {done:,} posts, {done / busy:,.0f}/s", flush=True)
                last_print = time.monotonic()
    if buf:
        t0, c0 = time.perf_counter(), time.process_time()
        store.bulk_index(buf)
        busy += time.perf_counter() - t0
        cpu += time.process_time() - c0
        done += len(buf)
    t0, c0 = time.perf_counter(), time.process_time()
    store.refresh()
    busy += time.perf_counter() - t0
    cpu += time.process_time() - c0
    return done / busy, done / max(cpu, 1e-9)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--osmem", type=int, default=50_000, help="posts for the osmem reference run (0: skip)")
    ap.add_argument("--batch", type=int, default=50_000, help="posts per bulk_index call (one transaction each)")
    ap.add_argument("--osmem-batch", type=int, default=1000, help="posts per bulk request in the osmem reference run")
    ap.add_argument("--order", choices=("arrival", "random"), default="arrival", help="order of published times while indexing (see Corpus.posts)")
    ap.add_argument(
        "--analysis-processes",
        type=int,
        default=1,
        help="SqliteStore(analysis_processes=N): analyse each batch in N worker processes while this one writes (0: all here)",
    )
    ap.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="keep an existing --db and skip indexing")
    args = ap.parse_args(argv)

    from index.sqlite import SqliteStore

    print("machine:", machine())
    corpus = Corpus()
    rnd = random.Random(99)
    tmp = tempfile.mkdtemp(prefix="yq-bench-")
    db = args.db or Path(tmp) / "index.db"
    if not args.reuse and db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    store = SqliteStore(db, analysis_processes=args.analysis_processes)
    store.ensure_schema()
    if not args.reuse:
        print(
            f"SQLite: indexing {args.posts:,} posts in bulk_index calls of {args.batch:,} (one transaction "
            f"each; WAL, synchronous=NORMAL), {args.order} order, {args.analysis_processes} analysis worker "
            f"process(es); each batch generated before its timed call ...",
            flush=True,
        )
        rate, cpu_rate = index_into(store, corpus, args.posts, args.batch, args.order)
        print(
            f"  SQLite bulk index: {rate:,.0f} posts/s wall, {cpu_rate:,.0f} posts per CPU-second of this "
            f"process (write + its share of the analysis; generation excluded)"
        )
        print("  load average after indexing: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    total = store.count(Query())
    with sqlite3.connect(db) as c:  # untimed: count the file, not the last transaction's WAL
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    size_mb = sum(Path(str(db) + s).stat().st_size for s in ("", "-wal") if Path(str(db) + s).exists()) / 2**20
    print(f"  {total:,} posts, {size_mb:,.0f} MiB on disk")
    bands = doc_freq_terms(store, corpus, rnd, total)
    print(f"  query terms: {len(bands['rare'])} under 1 % of posts, {len(bands['frequent'])} near 10 %")
    mix = query_mix(args.queries, bands, corpus, rnd)
    run_mix(store, mix[: max(10, len(mix) // 20)])  # warm the page cache
    report("sqlite", run_mix(store, mix))
    store.close()  # ends the analysis workers, so their CPU time is in RUSAGE_CHILDREN now
    if args.db is None:  # the temporary file (GBs at 1M posts)
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.reuse:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        kids_cpu = kids.ru_utime + kids.ru_stime
        total_cpu = args.posts / cpu_rate + kids_cpu
        print(
            f"  SQLite bulk index CPU: {total_cpu / args.posts * 1e6:,.1f} us per post in all processes "
            f"({args.posts / total_cpu:,.0f} posts per CPU-second; analysis workers {kids_cpu:,.1f} s); "
            f"wall {rate:,.0f} posts/s"
        )

    if args.osmem:
        from elasticsearch import Elasticsearch
        from osmem_server import OsmemServer

        from index.elastic import ElasticStore
        from tests.index.conftest import CompatShimNode
        from yuqing.config import ElasticConfig

        print(f"osmem (reference): indexing {args.osmem:,} posts ...", flush=True)
        with OsmemServer.start(japanese=False) as server:
            client = Elasticsearch(server.url, node_class=CompatShimNode, request_timeout=120)
            es = ElasticStore(ElasticConfig(url=server.url, index_prefix="bench"), client=client, arabic_analyzer="standard", lifecycle=False)
            es.ensure_schema()
            rate, cpu_rate = index_into(es, corpus, args.osmem, args.osmem_batch, args.order)
            print(f"  osmem bulk index: {rate:,.0f} posts/s wall ({cpu_rate:,.0f} per client CPU-second)")
            sub = ((k, q) for k, q in mix)
            report("osmem", run_mix(es, list(sub)[: max(50, args.queries // 4)]))
            es.close()


if __name__ == "__main__":
    main()
