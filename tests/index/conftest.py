"""Backends for the one index suite: `sqlite` (a file in tmp), `es` (osmem-server, the
in-memory OpenSearch-compatible server from PyPI, started here on 127.0.0.1 and stopped at the
end of the session) and `es-real` (only when ES_URL names a real cluster).

The elasticsearch 9.x client sends `application/vnd.elasticsearch+json; compatible-with=9`,
which osmem answers with 406. `CompatShimNode` rewrites those two headers to plain JSON /
NDJSON for the osmem backend only; production code never sees it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elastic_transport import Urllib3HttpNode

ES_URL = os.environ.get("ES_URL")
BACKENDS = [
    "sqlite",
    "es",
    pytest.param("es-real", marks=pytest.mark.skipif(not ES_URL, reason="ES_URL is not set (no real cluster)")),
]


class CompatShimNode(Urllib3HttpNode):
    """Test-only: plain JSON content types instead of the 9.x compatibility media types."""

    def perform_request(self, method: str, target: str, body: bytes | None = None, headers: Any = None, **kw: Any):  # type: ignore[override]
        if headers is not None:
            headers = headers.copy()
            for k in ("content-type", "accept"):
                v = headers.get(k)
                if v and "compatible-with" in v:
                    headers[k] = "application/x-ndjson" if "ndjson" in v else "application/json"
        return super().perform_request(method, target, body, headers, **kw)


@pytest.fixture(scope="session")
def osmem() -> Iterator[Any]:
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    assert server.url.startswith("http://127.0.0.1:")
    try:
        yield server
    finally:
        server.close()


def _make_es(url: str, osmem_compat: bool) -> Any:
    from index.elastic import ElasticStore
    from yuqing.config import ElasticConfig

    cfg = ElasticConfig(url=url, index_prefix=f"yq-test-{uuid.uuid4().hex[:10]}", timeout=10)
    if osmem_compat:
        # osmem has no `arabic` analyzer in mappings and no ILM API: see ElasticStore's docs
        return ElasticStore(
            cfg, arabic_analyzer="standard", lifecycle=False, max_retries=1, client_options={"node_class": CompatShimNode}
        )
    return ElasticStore(cfg)


StoreFactory = Callable[[], Any]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def store_factory(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreFactory]:
    """Makes fresh, empty stores of the module's backend; closes (and drops) them afterwards."""
    made: list[Any] = []

    def make() -> Any:
        if backend == "sqlite":
            from index.sqlite import SqliteStore

            s = SqliteStore(Path(tmp_path_factory.mktemp("idx")) / "index.db")
        elif backend == "es":
            s = _make_es(request.getfixturevalue("osmem").url, osmem_compat=True)
        else:
            s = _make_es(ES_URL or "", osmem_compat=False)
        s.ensure_schema()
        made.append(s)
        return s

    yield make
    for s in made:
        drop = getattr(s, "drop", None)
        if drop is not None:
            try:
                drop()
            except Exception:  # noqa: BLE001 - cleanup of a test index
                pass
        s.close()
