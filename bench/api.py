"""HTTP benchmark of the API on the embedded store (issue 7).

    python -m bench.api [--posts 1000000] [--clients 1,8,32] [--duration 20] [--data DIR]

1. Builds (once; reused while the post count matches) an index of N generated posts in zh/en/ar
   over 30 days, with a state database holding a token and a few alerts.
2. Starts the API (uvicorn, one worker) in a **separate process** on 127.0.0.1.
3. From this process, C client threads send a fixed query mix for `duration` seconds at each
   concurrency level and report p50 / p95 / requests per second / errors.

The load generator shares the machine's cores with the server (on a 2-core box that roughly
halves what the server gets): the figures are a floor, not what a dedicated server does.
Targets (issue 7): p95 <= 150 ms at 1 client, <= 600 ms at 8, no errors at 32.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

TARGETS = {1: 0.150, 8: 0.600}
T_END = datetime(2025, 6, 1, tzinfo=timezone.utc)
ZH = ["环保局", "通报", "泄漏", "水质", "化工厂", "回应", "谣言", "居民", "投诉", "调查"]
EN = ["bureau", "leak", "water", "statement", "residents", "rumor", "investigation", "chemical"]
AR = ["المكتب", "التسرب", "المياه", "بيان", "السكان", "شائعة", "تحقيق"]

# (weight, path, params): the console's and the dashboard's typical calls
MIX: list[tuple[int, str, dict[str, object]]] = [
    (20, "/api/v1/posts", {"q": "泄漏", "size": 20}),
    (10, "/api/v1/posts", {"q": "leak AND water", "size": 20}),
    (10, "/api/v1/posts", {"q": "التسرب", "lang": "ar", "size": 20}),
    (10, "/api/v1/posts", {"sentiment": "negative", "size": 20}),
    (5, "/api/v1/posts", {"q": "环保局", "sort": "engagement", "size": 20}),
    (5, "/api/v1/posts", {"q": "\"水质\"", "start": (T_END - timedelta(days=2)).isoformat(), "size": 20}),
    (10, "/api/v1/stats/volume", {"interval": "1h", "start": (T_END - timedelta(days=1)).isoformat(),
                                  "end": T_END.isoformat(), "split_by": "sentiment"}),
    (5, "/api/v1/stats/volume", {"interval": "1d", "q": "泄漏"}),
    (10, "/api/v1/stats/terms", {"field": "source", "start": (T_END - timedelta(days=1)).isoformat()}),
    (5, "/api/v1/stats/terms", {"field": "sentiment", "q": "leak"}),
    (10, "/api/v1/alerts", {"limit": 50}),
    # one post with its context and corrections (index + state database)
    (5, "/api/v1/posts/b00000042", {}),
]


def _posts(n: int, seed: int = 11):  # type: ignore[no-untyped-def]
    from yuqing.records import Author, Classification, Engagement, Post, TopicScore

    rnd = random.Random(seed)
    span = 30 * 86400
    for i in range(n):
        lang = rnd.choice(("zh", "zh", "en", "ar"))
        words = {"zh": ZH, "en": EN, "ar": AR}[lang]
        sep = "" if lang == "zh" else " "
        text = sep.join(rnd.choice(words) for _ in range(rnd.randint(6, 30)))
        sentiment = rnd.choice(("negative", "neutral", "neutral", "positive"))
        published = T_END - timedelta(seconds=rnd.random() * span)
        yield Post(
            id=f"b{i:08d}", url=f"https://bench.example/{i}", source=f"src{rnd.randint(0, 40)}",
            platform=rnd.choice(("weibo", "web", "forum")), author=Author(id=f"au{rnd.randint(0, 20000)}"),
            published_at=published, fetched_at=published, lang=lang, text=text,
            engagement=Engagement(likes=rnd.randint(0, 500), reposts=rnd.randint(0, 50)),
            watchlists=["agency"],
            classification=Classification(sentiment=sentiment, sentiment_scores={sentiment: 0.9}, rumor=rnd.random(),
                                          topics=[TopicScore(topic=rnd.choice(("pollution", "water", "policy")), score=0.8)],
                                          model="bench@1"),
        )


def build(data: Path, n: int) -> str:
    """Index n posts (skipped when the index already holds n); returns an admin token."""
    from api.security import create_token
    from index.base import Query
    from index.sqlite import SqliteStore
    from yuqing.state.db import connect, migrate

    data.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data / "index.db")
    store.ensure_schema()
    have = store.count(Query(size=0))
    if have != n:
        if have:
            store.close()
            for f in data.glob("index.db*"):
                f.unlink()
            store = SqliteStore(data / "index.db")
            store.ensure_schema()
        t0 = time.perf_counter()
        batch: list[object] = []
        done = 0
        for p in _posts(n):
            batch.append(p)
            if len(batch) == 2000:
                store.bulk_index(batch)  # type: ignore[arg-type]
                done += len(batch)
                batch = []
                print(f"\r  indexed {done:,}/{n:,} ({done / (time.perf_counter() - t0):,.0f}/s)", end="", flush=True)
        if batch:
            store.bulk_index(batch)  # type: ignore[arg-type]
        store.refresh()
        print(f"\n  index built in {time.perf_counter() - t0:,.0f} s", flush=True)
    store.close()
    engine = connect(f"sqlite:///{data / 'state.db'}")
    migrate(engine)
    return create_token(engine, "bench", "admin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER = """
import sys, uvicorn
from pathlib import Path
from api.main import create_app
from index.sqlite import SqliteStore
from yuqing.config import Settings
from yuqing.state.db import connect
data = Path(sys.argv[1])
app = create_app(Settings(data_dir=str(data)), store=SqliteStore(data / "index.db"),
                 engine=connect(f"sqlite:///{data / 'state.db'}"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def run_level(url: str, token: str, clients: int, duration: float) -> dict[str, float]:
    weights = [w for w, _, _ in MIX]
    lat: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}  # what failed: status codes and exception names
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker(seed: int) -> None:
        nonlocal errors
        rnd = random.Random(seed)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            while time.monotonic() < stop:
                _, path, params = rnd.choices(MIX, weights)[0]
                t0 = time.perf_counter()
                try:
                    status = c.get(path, params=params).status_code
                    kind = str(status)
                except httpx.HTTPError as e:
                    status, kind = 0, type(e).__name__
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if status != 200:
                        errors += 1
                        kinds[kind] = kinds.get(kind, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
        "rps": len(lat) / wall,
        "errors": errors,
        "kinds": kinds,  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    ap.add_argument("--data", default="data/bench-api")
    args = ap.parse_args(argv)
    from bench.machine import describe

    print(f"machine: {describe()}\nposts: {args.posts:,}", flush=True)
    data = Path(args.data).resolve()
    token = build(data, args.posts)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(data), str(port)], env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    rc = 0
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/api/v1/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            print("server did not become ready", file=sys.stderr)
            return 2
        run_level(url, token, 1, 2.0)  # warm the page cache
        print(f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'errors':>7}  target")
        for c in (int(x) for x in args.clients.split(",")):
            r = run_level(url, token, c, args.duration)
            target = TARGETS.get(c)
            verdict = ""
            if target is not None:
                ok = r["p95"] <= target
                verdict = f"p95 <= {target * 1000:.0f} ms: {'ok' if ok else 'MISSED'}"
                rc |= 0 if ok else 1
            if c >= 32:
                verdict = f"no errors: {'ok' if r['errors'] == 0 else 'MISSED'}"
                rc |= 0 if r["errors"] == 0 else 1
            print(f"{c:>8} {r['requests']:>9,.0f} {r['p50'] * 1000:>8.1f} {r['p95'] * 1000:>8.1f} "
                  f"{r['rps']:>8.1f} {r['errors']:>7.0f}  {verdict}", flush=True)
            if r["errors"]:
                print(f"         errors by kind: {r['kinds']}", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
