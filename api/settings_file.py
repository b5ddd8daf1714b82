"""The configuration file as the API sees it: read it, write one section back, notice changes.

Design (issue 7, "effective without a restart"):

- **One source of truth, the YAML file.** An admin's write replaces one top-level section
  (`watchlists`, `sources`, `topics`, `alerts`, `channels`) in the file's text. Only that
  section's lines are rewritten; comments and layout elsewhere in the file stay as the team
  wrote them.
- **Validated exactly like a start-up.** The new text is written to a temporary file next to the
  real one and read with `yuqing.config.load_settings` — the same models, the same cross-checks
  (unique names, alert windows), the same environment overrides. Only when that succeeds is the
  temporary file fsynced and renamed over the real one (`os.replace`: readers see the old file or
  the new one, never half of one). The previous text is kept as `<file>.bak`.
- **Writers serialise** on an exclusive `flock` of `<file>.lock` (several API replicas may share
  the file) and on `If-Match`: a client that read version X and writes while someone else wrote
  Y gets 412 instead of silently undoing the other edit.
- **Effective without a restart.** `current()` stats the file at most every `check_every`
  seconds and reloads it when it changed — whoever changed it (this replica, another one, an
  operator with an editor). A file that no longer validates is *not* applied: the last good
  settings stay in force and `error` says what is wrong (shown by GET /config). The other
  processes (scheduler jobs, crawls) already read the file at every run.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, SecretStr

from yuqing.config import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

SECTIONS = ("watchlists", "sources", "topics", "alerts", "channels", "oncall")
# sections that live inside another one in the file: oncall is `alerts.oncall`
NESTED = {"oncall": "alerts"}
REDACTED = "***"
_SECRET_KEY = re.compile(r"(key|token|secret|passw|cookie|auth|credential)", re.I)


class NoConfigFile(Exception):
    """The settings were not read from a file; there is nothing to write to."""


class VersionMismatch(Exception):
    """If-Match named a version that is no longer the file's."""


class InvalidConfig(ValueError):
    """The new configuration does not validate; the message lists each problem."""


class MissingSecret(ValueError):
    """A redacted secret was sent back for something that has no stored secret to keep."""


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# -- plain values (what the YAML file and the API carry) ----------------------------------------


def format_duration(td: timedelta) -> str:
    """timedelta -> the file's own notation ('15m', '1h', '90s'), which the models read back."""
    ms = round(td.total_seconds() * 1000)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def plain(value: Any) -> Any:
    """A model dump made of YAML/JSON scalars: durations in the file's notation, enums as values."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def section_value(settings: Settings, section: str) -> Any:
    if section in NESTED:
        return plain(getattr(getattr(settings, NESTED[section]), section))
    return plain(getattr(settings, section))


# -- secrets -----------------------------------------------------------------------------------


def _redact_url(url: str, *, whole: bool) -> str:
    if url.startswith("env:"):
        return url  # names an environment variable; the secret is not here
    if whole:  # an Apprise URL carries its credentials in every part
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{REDACTED}" if scheme else REDACTED
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:{REDACTED}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _redact_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if _SECRET_KEY.search(k) and v not in (None, "") else v) for k, v in options.items()}


def redact(section: str, value: Any) -> Any:
    """What a reader may see: channel URLs (Apprise URLs hold tokens and passwords) shown as
    `scheme://***`, passwords in source URLs and secret-looking source options as `***`."""
    if section == "channels":
        return [{**c, "url": _redact_url(c["url"], whole=True)} for c in value]
    if section == "sources":
        return [{**s, "url": _redact_url(s["url"], whole=False),
                 "options": _redact_options(s.get("options") or {})} for s in value]
    return value


def restore_secrets(section: str, new: Any, old: Any) -> Any:
    """Put the stored secret back wherever a writer sent the redacted form it read (matched by
    name), so an admin can edit a channel's level without retyping its URL."""
    if section not in ("channels", "sources"):
        return new
    old_by_name = {o["name"]: o for o in old}
    out = []
    for item in new:
        item = dict(item)
        prev = old_by_name.get(item.get("name"))
        url = item.get("url")
        if isinstance(url, str) and REDACTED in url:
            if prev is None or _redact_url(prev["url"], whole=section == "channels") != url:
                raise MissingSecret(f"{section} {item.get('name')!r}: the url is redacted; send the full url")
            item["url"] = prev["url"]
        if section == "sources" and isinstance(item.get("options"), dict):
            opts = dict(item["options"])
            for k, v in opts.items():
                if v == REDACTED:
                    if prev is None or k not in (prev.get("options") or {}):
                        raise MissingSecret(f"sources {item.get('name')!r}: option {k!r} is redacted; send its value")
                    opts[k] = prev["options"][k]
            item["options"] = opts
        out.append(item)
    return out


# -- splicing one section into the file's text --------------------------------------------------


def splice_section(text: str, key: str, value: Any) -> str:
    """`text` with the top-level `key` replaced by `value` (appended when absent). Lines outside
    that section — comments included — are kept as they are."""
    block = yaml.safe_dump({key: value}, allow_unicode=True, sort_keys=False, default_flow_style=False, width=4096)
    try:
        root = yaml.compose(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise InvalidConfig(f"the current file is not valid YAML: {e}") from None
    if root is None:
        return block
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        data = yaml.safe_load(text) or {}
        data[key] = value
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False, width=4096)
    lines = text.splitlines(keepends=True)
    starts = sorted(k.start_mark.line for k, _ in root.value)
    mine = [k.start_mark.line for k, _ in root.value if k.value == key]
    if not mine:
        sep = "" if text.endswith("\n") else "\n"
        return text + sep + block
    start = mine[0]
    later = [s for s in starts if s > start]
    end = later[0] if later else len(lines)
    # comment and blank lines at column 0 just above the next key introduce that key: keep them
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


# -- the holder ---------------------------------------------------------------------------------


class ConfigFile:
    """The settings in force, reloaded when the file changes; writes one section at a time."""

    def __init__(self, settings: Settings, path: str | os.PathLike[str] | None, *, check_every: float = 1.0) -> None:
        self.path = Path(path).resolve() if path is not None else None
        self.check_every = check_every
        self.error: str | None = None
        self.loaded_at = datetime.now(timezone.utc)
        self._settings = settings
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._stat()
        self._version = self._read_version()

    # reads
    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_version(self) -> str | None:
        if self.path is None or not self.path.exists():
            return None
        return version_of(self.path.read_bytes())

    @property
    def version(self) -> str | None:
        return self._version

    def current(self) -> Settings:
        """The settings in force; reloads the file when it changed since the last look."""
        if self.path is None or time.monotonic() - self._checked < self.check_every:
            return self._settings
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._stat()
            if stamp != self._stamp and stamp is not None:
                self._reload(stamp)
        return self._settings

    def _reload(self, stamp: tuple[int, int, int]) -> None:
        assert self.path is not None
        try:
            settings = load_settings(self.path)
        except ConfigError as e:
            if self.error != str(e):
                log.error("configuration file changed but does not validate; keeping the previous settings: %s", e)
            self.error = str(e)
            self._stamp = stamp
            return
        self._settings, self._stamp, self.error = settings, stamp, None
        self._version = self._read_version()
        self.loaded_at = datetime.now(timezone.utc)
        log.info("configuration reloaded from %s (version %s)", self.path, self._version)

    def force_check(self) -> Settings:
        self._checked = 0.0
        return self.current()

    # writes
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        assert self.path is not None
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    def write_section(self, section: str, value: Any, *, if_match: str | None = None) -> Settings:
        """Replace one section (plain values, secrets already restored) and apply it.
        Raises NoConfigFile, VersionMismatch, InvalidConfig."""
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}")
        if self.path is None:
            raise NoConfigFile("the settings were not read from a file; start the service with --config to edit them here")
        with self._exclusive():
            old = self.path.read_bytes() if self.path.exists() else b""
            if if_match is not None and if_match.strip('"') != version_of(old):
                raise VersionMismatch(
                    f"the configuration changed since version {if_match.strip(chr(34))} was read "
                    f"(now {version_of(old)}); read it again and redo the change"
                )
            key = section
            if section in NESTED:  # replace the one key inside its parent section, keep the rest as written
                key = NESTED[section]
                try:
                    parent = (yaml.safe_load(old) or {}).get(key) or {}
                except yaml.YAMLError as e:
                    raise InvalidConfig(f"the current file is not valid YAML: {e}") from None
                if not isinstance(parent, dict):
                    raise InvalidConfig(f"{key}: expected a mapping in the current file")
                value = {**parent, section: value}
            new_text = splice_section(old.decode("utf-8"), key, value)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(new_text)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    settings = load_settings(tmp)
                except ConfigError as e:
                    raise InvalidConfig(str(e).replace(str(tmp), self.path.name)) from None
                if self.path.exists():
                    os.chmod(tmp, self.path.stat().st_mode & 0o7777)
                    self.path.with_name(self.path.name + ".bak").write_bytes(old)
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            # base_dir came from the temporary file's directory: the same as the real one
            self._settings = settings
            self._stamp = self._stat()
            self._version = version_of(new_text.encode("utf-8"))
            self._checked = time.monotonic()
            self.error = None
            self.loaded_at = datetime.now(timezone.utc)
        return settings
