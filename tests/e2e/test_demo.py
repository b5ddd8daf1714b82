"""`yuqing demo` as a new user runs it (`make run`): within a minute of starting, the API shows
an alert for the bundled incident, raised by the real pipeline (Scrapy crawls of the demo site,
inbox, worker with the shipped model, SQLite index, detector)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_raises_an_alert_within_a_minute(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "yuqing.cli", "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo"),
         "--models-dir", str(ROOT / "models")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    out: list[str] = []
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            out.append(line)
            m = re.search(r"token:\s+(\S+)", line)
            token = m.group(1) if m else None
        assert token, "demo printed no token:\n" + "".join(out)
        assert any(f"http://127.0.0.1:{port}/" in line for line in out), "".join(out)
        started = time.monotonic()
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = {"Authorization": f"Bearer {token}"}
        alerts: list[dict] = []
        while time.monotonic() - started < 75 and not alerts:
            time.sleep(2)
            try:
                r = httpx.get(f"{base}/alerts", headers=headers, timeout=5)
            except httpx.TransportError:
                continue
            if r.status_code == 200:
                body = r.json()
                alerts = body["items"] if isinstance(body, dict) else body
        elapsed = time.monotonic() - started
        assert alerts, f"no alert after {elapsed:.0f}s"
        assert alerts[0]["level"] in {"blue", "yellow", "orange", "red"}
        assert elapsed <= 75
        # the posts behind it are searchable, in all three languages
        r = httpx.get(f"{base}/posts", params={"size": 100}, headers=headers, timeout=10)
        langs = {h["post"]["lang"] if "post" in h else h["lang"] for h in r.json()["hits"]}
        assert {"zh", "en", "ar"} <= langs
        # without the token, nothing
        assert httpx.get(f"{base}/alerts", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
