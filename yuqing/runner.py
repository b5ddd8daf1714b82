"""`yuqing run`: scheduler, crawlers, worker and API on one machine, one command.

The worker runs in its own process (supervised: restarted if it dies); the crawler loop runs
here and starts each crawl in a fresh subprocess; the scheduler and the API run here too. Scaled
out, the same pieces run as separate roles (`yuqing worker`, `yuqing crawler`, `yuqing
scheduler`, `yuqing api`; see deploy/), with the same code.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

from yuqing.config import Settings

log = logging.getLogger("yuqing.run")

CONSOLE_TOKEN_FILE = "console.token"


def console_token(settings: Settings, engine) -> str:  # type: ignore[no-untyped-def]
    """The embedded install's admin token: created once, its hash in the state database, the
    plaintext kept only in the data directory (0600) so `yuqing run` can print it again."""
    from api.security import authenticate, create_token

    path = settings.data_path / CONSOLE_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if authenticate(engine, token) is not None:
            return token
    token = create_token(engine, "console", "admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


class WorkerSupervisor:
    """Keeps one `yuqing worker` subprocess alive until stopped (restarted if it dies)."""

    def __init__(self, config_path: str, log_path: Path) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker-supervisor", daemon=True)

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "yuqing.cli", "worker", "--config", self.config_path], stdout=out, stderr=subprocess.STDOUT
        )

    def _loop(self) -> None:
        self._spawn()
        while not self._stop.wait(1.0):
            if self.proc is not None and self.proc.poll() is not None:
                log.error("worker exited with %s; restarting (see %s)", self.proc.returncode, self.log_path)
                self._spawn()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def serve(settings: Settings, config_path: str, *, banner: str = "", ready: threading.Event | None = None) -> None:
    """Start everything and serve the API until Ctrl-C (or until the server stops)."""
    import uvicorn

    from api.main import create_app
    from index import open_store
    from yuqing.scheduler import LeaderScheduler
    from yuqing.state.db import connect, migrate

    engine = connect(settings.state_url)
    migrate(engine)
    store = open_store(settings)
    store.ensure_schema()
    token = console_token(settings, engine)
    worker = WorkerSupervisor(config_path, settings.data_path / "logs" / "worker.log")
    scheduler = LeaderScheduler(settings, config_path, engine)
    app = create_app(settings, store=store, engine=engine, config_path=config_path)
    config = uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_level="warning")
    server = uvicorn.Server(config)
    url = settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}"
    from yuqing.crawler import run_crawler

    crawl_stop = threading.Event()
    crawler = threading.Thread(
        target=run_crawler, args=(config_path, crawl_stop), kwargs={"slots": 2}, name="crawler", daemon=True
    )
    worker.start()
    crawler.start()
    scheduler.start()
    print(
        f"{banner}\n  console:   {url}/\n  API:       {url}/api/v1  (OpenAPI: {url}/docs)\n"
        f"  token:     {token}\n  data:      {settings.data_path}\n  Ctrl-C to stop.",
        flush=True,
    )
    if ready is not None:
        threading.Thread(target=lambda: (_wait_started(server), ready.set()), daemon=True).start()
    try:
        server.run()
    finally:
        scheduler.stop()
        crawl_stop.set()
        crawler.join(timeout=10)
        worker.stop()
        store.close()
        engine.dispose()


def _wait_started(server) -> None:  # type: ignore[no-untyped-def]
    import time

    while not server.started:
        time.sleep(0.05)


def new_secret() -> str:
    return secrets.token_urlsafe(32)
