"""Export streams: memory stays at about one page of posts however many match.

Measured with tracemalloc in this process, where the live server's threads run: exporting three
times as many posts must not take anywhere near three times the peak memory. (An exporter that
collected the rows first, or a response that buffered, scales linearly and fails this.)"""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest

from api.main import create_app

from .conftest import T0, LiveServer, World, make_post

N = 1800
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big(world: World, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from index.sqlite import SqliteStore

    store = SqliteStore(tmp_path_factory.mktemp("export") / "index.db")
    store.ensure_schema()
    filler = "环保局通报 bureau statement المكتب " * 8  # ~300 bytes a post
    posts = [make_post(i, f"{filler} {i}", lang="zh", hours_ago=i / 60) for i in range(N)]
    for k in range(0, N, 1000):
        assert all(r.ok for r in store.bulk_index(posts[k:k + 1000]))
    store.refresh()
    app = create_app(world.settings, store=store, engine=world.engine)
    with LiveServer(app) as server:
        yield server.url
    store.close()


def _peak_export(world: World, url: str, params: dict[str, str]) -> tuple[int, int]:
    import httpx

    lines = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {world.tokens['analyst']}"}, timeout=120) as c:
        tracemalloc.start()
        try:
            with c.stream("GET", "/api/v1/posts/export", params={"format": "jsonl", **params}) as r:
                assert r.status_code == 200
                for chunk in r.iter_bytes():
                    lines += chunk.count(b"\n")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return lines, peak


def test_export_memory_is_bounded_by_the_page_not_the_result(world: World, big: str) -> None:
    small_n, small_peak = _peak_export(world, big, {"start": (T0 - timedelta(minutes=N / 3 - 0.5)).isoformat()})
    all_n, all_peak = _peak_export(world, big, {})
    assert all_n == N and small_n == N // 3
    # both exports hold at most one full page (500) at a time; a linear exporter needs 3x
    assert all_peak < 1.8 * small_peak, (small_peak, all_peak)
