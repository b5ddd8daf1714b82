"""Personal-data minimisation: the key for pseudonymous author ids, and retention.

The key comes from configuration (`privacy.pseudonym_key`, e.g. via
`YUQING_PRIVACY__PSEUDONYM_KEY` in a scaled-out deployment, where every crawler must share it);
otherwise one is generated on first use and kept in the data directory with mode 0600, so the
same author maps to the same id across restarts of an embedded install.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from yuqing.config import Settings

KEY_FILE = "pseudonym.key"


def pseudonym_key(settings: Settings) -> bytes:
    if settings.privacy.pseudonym_key is not None:
        key = settings.privacy.pseudonym_key.get_secret_value().encode("utf-8")
        if len(key) < 16:
            from yuqing.config import ConfigError

            raise ConfigError("privacy.pseudonym_key: expected at least 16 characters of secret")
        return key
    path: Path = settings.data_path / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    # O_EXCL: two processes starting at once agree on one key (the loser reads the winner's)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def retention_cutoff(settings: Settings, now: datetime | None = None) -> datetime:
    """Posts published before this instant are past retention and are deleted."""
    return (now or datetime.now(timezone.utc)) - timedelta(days=settings.privacy.retention_days)
