"""Signed one-click acknowledge links that expire.

A notification carries `<base>/api/v1/alerts/ack?token=<token>`; the token says which alert and
until when, signed with HMAC-SHA256 under a key only the service holds, so the link works
without a login (a duty officer on a phone at 3 a.m.) but cannot be forged, altered to another
alert, or used after it expires. The API verifies with `verify_ack` and records the
acknowledgement with the actor `link:<channel>` it carries.

    key = ack_key(settings)                             # bytes, kept in the data directory
    token = sign_ack(key, alert_id, channel, expires_at)
    alert_id, channel = verify_ack(key, token, now)     # raises InvalidLink
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from yuqing.config import Settings

KEY_FILE = "ack-link.key"


class InvalidLink(ValueError):
    """The token is malformed, forged, or expired."""


def ack_key(settings: Settings) -> bytes:
    """The signing key: `$YUQING_ACK_KEY` (shared by every API replica when scaled out), else
    a random key created once in the data directory with mode 0600."""
    env = os.environ.get("YUQING_ACK_KEY")
    if env:
        if len(env) < 16:
            raise ValueError("YUQING_ACK_KEY must hold at least 16 characters of secret")
        return env.encode("utf-8")
    path: Path = settings.data_path / KEY_FILE
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sign_ack(key: bytes, alert_id: int, channel: str, expires_at: datetime) -> str:
    body = json.dumps({"a": int(alert_id), "c": channel, "e": int(expires_at.timestamp())}, separators=(",", ":")).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify_ack(key: bytes, token: str, now: datetime) -> tuple[int, str]:
    try:
        body_s, mac_s = token.split(".", 1)
        body, mac = _unb64(body_s), _unb64(mac_s)
    except (ValueError, TypeError):
        raise InvalidLink("malformed link") from None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise InvalidLink("the link's signature does not match")
    data = json.loads(body)
    if now.astimezone(timezone.utc).timestamp() >= data["e"]:
        raise InvalidLink("the link has expired")
    return int(data["a"]), str(data["c"])
