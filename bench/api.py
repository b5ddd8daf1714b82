"""HTTP benchmark of the API on the embedded store (issue 7): the index benchmark's corpus and
query mix (bench/index.py), sent over HTTP.

    python -m bench.api [--posts 1000000] [--clients 1,8,32] [--duration 20] [--data DIR]
    python -m bench.api --posts 200000          # the development size; each size keeps its own index

1. Builds (once; reused while the file holds exactly N posts) an index of N posts from
   `bench.index.Corpus` — zh/en/ar text with Zipf-like word frequencies over 60 days, 300
   sources — and a state database holding a token.
2. Picks query terms by their measured document frequency (`bench.index.doc_freq_terms`: most
   under 1 % of posts, a few near 10 %) and draws `bench.index.query_mix`: 70 % searches of one
   to three terms with a 7-day window and one facet filter, top 20 by time; 30 % the dashboard's
   stats for such a query, which over HTTP is two calls — hourly volume split by sentiment and
   the top 10 sources. The terms are cached next to the index (`bench-terms.json`).
3. Starts the API (uvicorn, one worker) in a **separate process** on 127.0.0.1, and from this
   process C client threads replay the mix for `duration` seconds at each concurrency level;
   every HTTP request is one latency sample (p50 / p95 / requests per second / errors, overall
   and per endpoint), and per endpoint the mean time the app itself measured (its
   request-latency metric): the gap to the client's figure is queueing and HTTP handling.

The load generator shares the machine's cores with the server (on a 2-core box that roughly
halves what the server gets): the figures are a floor, not what a dedicated server does.
Targets (issue 7): p95 <= 150 ms at 1 client, <= 600 ms at 8, no errors at 32.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.index import Corpus, doc_freq_terms, index_into, machine, pct, query_mix
from index.base import Query

TARGETS = {1: 0.150, 8: 0.600}
TZ = "Asia/Shanghai"
# (path, params) of one HTTP call; a mix entry is one call (search) or two (the dashboard's stats)
Call = tuple[str, dict[str, Any]]


def http_params(q: Query) -> dict[str, Any]:
    """The API's query parameters for the filters of an index `Query` (api.deps.filter_params)."""
    out: dict[str, Any] = {}
    if q.text:
        out["q"] = q.text
    if q.start:
        out["start"] = q.start.isoformat()
    if q.end:
        out["end"] = q.end.isoformat()
    for field, param in (("sources", "source"), ("platforms", "platform"), ("langs", "lang"),
                         ("sentiments", "sentiment"), ("topics", "topic"), ("watchlists", "watchlist")):
        values = getattr(q, field)
        if values:
            out[param] = ",".join(values)
    return out


def http_mix(mix: list[tuple[str, Query]]) -> list[list[Call]]:
    """`bench.index.query_mix` as HTTP calls: a search is GET /posts (top 20 by time, with the
    highlights the console shows); the dashboard's stats are GET /stats/volume (1 h x sentiment)
    and GET /stats/terms (top 10 sources) for the same filters."""
    out: list[list[Call]] = []
    for kind, q in mix:
        p = http_params(q)
        if kind == "search":
            out.append([("/api/v1/posts", {**p, "size": q.size, "sort": "time"})])
        else:
            out.append([("/api/v1/stats/volume", {**p, "interval": "1h", "split_by": "sentiment", "tz": TZ}),
                        ("/api/v1/stats/terms", {**p, "field": "source", "size": 10})])
    return out


def build(data: Path, n: int, order: str) -> None:
    """Index n posts of `bench.index.Corpus` into data/index.db (skipped when it already holds n)."""
    from index.sqlite import SqliteStore

    data.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data / "index.db")
    store.ensure_schema()
    have = store.count(Query(size=0))
    if have == n:
        print(f"  reusing the index in {data} ({n:,} posts)", flush=True)
        store.close()
        return
    if have:
        store.close()
        for f in data.glob("index.db*"):
            f.unlink()
        (data / "bench-terms.json").unlink(missing_ok=True)
        store = SqliteStore(data / "index.db")
        store.ensure_schema()
    print(f"  indexing {n:,} posts ({order} order) ...", flush=True)
    t0 = time.perf_counter()
    rate, cpu_rate = index_into(store, Corpus(), n, 1000, order)
    store.close()
    print(f"  index built in {time.perf_counter() - t0:,.0f} s wall including generation "
          f"({rate:,.0f} posts/s indexing, {cpu_rate:,.0f} per CPU-second)", flush=True)


def terms(data: Path, n: int) -> dict[str, list[tuple[str, str, float]]]:
    """Query terms by document-frequency band, measured once per index and cached."""
    from index.sqlite import SqliteStore

    cache = data / "bench-terms.json"
    if cache.exists():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("posts") == n:
            return {k: [tuple(x) for x in v] for k, v in saved["bands"].items()}  # type: ignore[misc]
    store = SqliteStore(data / "index.db")
    bands = doc_freq_terms(store, Corpus(), random.Random(99), n)
    store.close()
    cache.write_text(json.dumps({"posts": n, "bands": bands}, ensure_ascii=False), encoding="utf-8")
    return bands


def token(data: Path) -> str:
    from api.security import create_token
    from yuqing.state.db import connect, migrate

    engine = connect(f"sqlite:///{data / 'state.db'}")
    migrate(engine)
    try:
        return create_token(engine, "bench", "viewer")
    finally:
        engine.dispose()


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


def run_level(url: str, tok: str, calls: list[list[Call]], clients: int, duration: float) -> dict[str, Any]:
    """`clients` threads, each walking the mix from its own offset, for `duration` seconds."""
    lat: list[float] = []
    by_path: dict[str, list[float]] = {}
    errors = 0
    kinds: dict[str, int] = {}  # what failed: status codes and exception names
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker(seed: int) -> None:
        nonlocal errors
        i = random.Random(seed).randrange(len(calls))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tok}"}, timeout=60) as c:
            while time.monotonic() < stop:
                for path, params in calls[i % len(calls)]:
                    t0 = time.perf_counter()
                    try:
                        status = c.get(path, params=params).status_code
                        kind = str(status)
                    except httpx.HTTPError as e:
                        status, kind = 0, type(e).__name__
                    dt = time.perf_counter() - t0
                    with lock:
                        lat.append(dt)
                        by_path.setdefault(path.removeprefix("/api/v1/"), []).append(dt)
                        if status != 200:
                            errors += 1
                            kinds[kind] = kinds.get(kind, 0) + 1
                i += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": len(lat), "p50": pct(lat, 50), "p95": pct(lat, 95), "rps": len(lat) / wall,
            "errors": errors, "kinds": kinds,
            "paths": {p: (len(xs), pct(xs, 50), pct(xs, 95)) for p, xs in sorted(by_path.items())}}


def server_times(url: str, tok: str) -> dict[str, tuple[float, float]]:
    """The server's own request-latency histogram (api.metrics), per route: (count, seconds).
    Measured inside the app (auth, handler, store, serialisation), so the difference from the
    client's figure is queueing, HTTP parsing and the client itself."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/api/v1/metrics", headers={"Authorization": f"Bearer {tok}"}, timeout=60).text
    out: dict[str, tuple[float, float]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != "yuqing_http_request_duration_seconds":
            continue
        for sample in fam.samples:
            route = sample.labels.get("route", "").removeprefix("/api/v1/")
            n, total = out.get(route, (0.0, 0.0))
            if sample.name.endswith("_count"):
                out[route] = (n + sample.value, total)
            elif sample.name.endswith("_sum"):
                out[route] = (n, total + sample.value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    ap.add_argument("--queries", type=int, default=400, help="size of the query mix the clients replay")
    ap.add_argument("--order", choices=("arrival", "random"), default="random",
                    help="order of published times while indexing (bench.index.Corpus.posts)")
    ap.add_argument("--data", default=None,
                    help="index, state database and term cache, reused by later runs (default: data/bench-api/<posts>)")
    args = ap.parse_args(argv)

    print(f"machine: {machine()}\nposts: {args.posts:,}", flush=True)
    data = Path(args.data or f"data/bench-api/{args.posts}").resolve()
    build(data, args.posts, args.order)
    bands = terms(data, args.posts)
    print(f"  query terms: {len(bands['rare'])} under 1 % of posts, {len(bands['frequent'])} near 10 %", flush=True)
    calls = http_mix(query_mix(args.queries, bands, Corpus(), random.Random(99)))
    tok = token(data)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(data), str(port)], env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    rc = 0
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/api/v1/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            print("server did not become ready", file=sys.stderr)
            return 2
        run_level(url, tok, calls, 1, 3.0)  # warm the page cache
        print(f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'errors':>7}  target")
        for c in (int(x) for x in args.clients.split(",")):
            before = server_times(url, tok)
            r = run_level(url, tok, calls, c, args.duration)
            after = server_times(url, tok)
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
            for p, (n, p50, p95) in r["paths"].items():
                sn = after.get(p, (0.0, 0.0))[0] - before.get(p, (0.0, 0.0))[0]
                st = after.get(p, (0.0, 0.0))[1] - before.get(p, (0.0, 0.0))[1]
                inside = f"   (in the app: mean {st / sn * 1000:.1f} ms)" if sn else ""
                print(f"{'':>8} {n:>9,} {p50 * 1000:>8.1f} {p95 * 1000:>8.1f}  {p}{inside}", flush=True)
            if r["errors"]:
                print(f"         errors by kind: {r['kinds']}", flush=True)
        print(f"load after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
