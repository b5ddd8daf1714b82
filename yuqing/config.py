"""Configuration: one YAML file validated by pydantic models, with environment overrides.

Why one file: a comms team edits sources, watchlists, topics, alert rules and channels in one
place, and the same models validate the file at start and every API write (the API issue).
Environment variables override any key, `YUQING_` + the key path joined by `__`
(e.g. `YUQING_INDEX__BACKEND=elasticsearch`, `YUQING_STATE__URL=postgresql+psycopg://...`),
so containers change backends without editing the file.

A broken file fails at start with a `ConfigError` naming the file, the key path, the line and
what was expected, never with a traceback from deep inside a stage.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from yuqing.records import SourceTier

LEVELS = ("blue", "yellow", "orange", "red")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(v: Any) -> timedelta:
    """'90s', '5m', '1.5h', '2d', '1w', a number of seconds, or ISO 8601 ('PT15M', which is how
    the API's OpenAPI schema describes durations)."""
    if isinstance(v, timedelta):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return timedelta(seconds=float(v))
    if isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
        if v.strip().upper().startswith("P"):
            from pydantic import TypeAdapter

            try:
                return TypeAdapter(timedelta).validate_python(v.strip())
            except ValidationError:
                pass
    raise ValueError(f"expected a duration like '30s', '5m', '1h', '2d' or a number of seconds, got {v!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a rule that never fires."""

    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """One public source. `kind` picks the spider (feed: RSS/Atom; html: listing + article
    pages; forum: thread pages, `options.preset` phpbb|discuz|generic; discourse: Discourse
    JSON; api: microblog/social JSON APIs, presets mastodon|reddit|weibo; telegram: a public
    channel's t.me/s preview); kind-specific options live in `options`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["feed", "html", "forum", "discourse", "api", "telegram"]
    url: str
    interval: Duration = timedelta(minutes=15)
    platform: str = "web"
    tier: SourceTier = SourceTier.public
    lang: str | None = None
    timezone: str | None = None
    enabled: bool = True
    # html: CSS selectors (link, title, text, date, author) and how deep to follow listing pages
    selectors: dict[str, str] = Field(default_factory=dict)
    max_pages: int = Field(default=50, ge=1, le=100_000)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_tz(v) if v else v


def _check_tz(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (expected an IANA name like 'Asia/Shanghai')") from None
    return v


class WatchlistConfig(_Strict):
    """Names and aliases of the agency (or a leader, a programme). A post is kept only if it
    matches at least one watchlist."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    priority: int = Field(default=1, ge=1, le=10)
    terms: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("terms", "exclude")
    @classmethod
    def _valid_queries(cls, v: list[str]) -> list[str]:
        """Each term is a query in the watchlist language (`crawlers.query`): a plain name, or
        AND/OR/NOT, "phrases", NEAR/n, word*, site:/author:/lang:. A mistake is reported here,
        at start, with the column, not at the first crawl."""
        from crawlers.query import QuerySyntaxError, parse

        for i, t in enumerate(v):
            if not t.strip():
                raise ValueError(f"term {i + 1} is blank")
            try:
                parse(t)
            except QuerySyntaxError as e:
                raise ValueError(f"term {i + 1} {t!r}: {e}") from None
        return v


class TopicConfig(_Strict):
    """One topic of the agency's taxonomy (the same shape as `yuqing classify --topics`)."""

    name: str
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class LevelRule(_Strict):
    """Raise at `level` when every given figure is reached. Rules are checked from red down;
    the first that holds sets the level."""

    level: Literal["blue", "yellow", "orange", "red"]
    min_count: int = Field(default=5, ge=1)
    min_ratio: float = Field(default=2.0, ge=1.0)
    max_p_value: float = Field(default=0.01, gt=0.0, le=1.0)
    min_negative_share: float | None = Field(default=None, ge=0.0, le=1.0)


HISTOGRAM_BUCKETS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 1440))


Level = Literal["blue", "yellow", "orange", "red"]


class NegativeShareRule(_Strict):
    """Raise at `level` when the share of negative posts in the window is at least `min_share`,
    has risen by at least `min_rise` over the baseline's share, and at least `min_negative`
    negative posts (or clusters) back it: a turn of opinion, caught even when volume is flat.
    The count floor keeps 2 of 3 posts from paging anyone."""

    level: Level
    min_negative: int = Field(default=10, ge=1)
    min_share: float = Field(default=0.6, gt=0.0, le=1.0)
    min_rise: float = Field(default=0.25, ge=0.0, le=1.0)


class HighReachRule(_Strict):
    """Raise at `level` when a single post in the window comes from an author with at least
    `min_followers` followers, or reached (followers + interactions) at least `min_reach`:
    one post from a very large account can matter before any volume builds up."""

    level: Level
    min_followers: int | None = Field(default=None, ge=1)
    min_reach: int | None = Field(default=None, ge=1)
    # only when the post itself is negative at least this much (None: any sentiment)
    min_negative_score: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _some_threshold(self) -> "HighReachRule":
        if self.min_followers is None and self.min_reach is None:
            raise ValueError("a high_reach rule needs min_followers or min_reach")
        return self


class ConfirmWindow(_Strict):
    """A second horizon on which a volume spike must show before it opens an alert (issue 6:
    "last 15 min vs last 3 h vs same time last week"). The window's count is compared with a
    reference, floored at `baseline_floor`: with `span`, the count per window over the `span`
    just before the window (is it rising against the last hours?); with `lag`, the same window
    `lag` ago (is it more than at this time last week?). It confirms when the ratio reaches
    `min_ratio`."""

    name: str = Field(min_length=1, max_length=40)
    span: Duration | None = None
    lag: Duration | None = None
    min_ratio: float = Field(default=1.5, ge=1.0)

    @model_validator(mode="after")
    def _one_reference(self) -> "ConfirmWindow":
        if (self.span is None) == (self.lag is None):
            raise ValueError(f"confirm window {self.name!r}: give exactly one of span (the hours before) or lag (the same window that long ago)")
        return self


def _default_confirm() -> list[ConfirmWindow]:
    return [
        ConfirmWindow(name="last 3 h", span=timedelta(hours=3), min_ratio=1.5),
        ConfirmWindow(name="same time last week", lag=timedelta(days=7), min_ratio=1.5),
    ]


class AlertsOverride(_Strict):
    """Per-watchlist thresholds (`alerts.overrides.<watchlist>`): every field given replaces the
    global one for that watchlist only; timing (window, baseline, interval) stays global
    because the detector reads one set of count buckets for all watchlists."""

    levels: list[LevelRule] | None = None
    baseline_floor: float | None = Field(default=None, gt=0.0)
    negative_share: list[NegativeShareRule] | None = None
    rumor_min: float | None = Field(default=None, ge=0.0, le=1.0)
    rumor_levels: list[LevelRule] | None = None
    high_reach: list[HighReachRule] | None = None
    pickup_raise: int | None = Field(default=None, ge=0, le=3)
    count_by: Literal["posts", "clusters"] | None = None
    deadlines: dict[Level, Duration] | None = None
    topics: list[str] | None = None
    confirm: list[ConfirmWindow] | None = None
    confirm_min: int | None = Field(default=None, ge=0)


class RotaShift(_Strict):
    """Who is on duty when: `contact` from `start` to `end` (local "HH:MM" in the agency's time
    zone; an `end` at or before `start` runs past midnight) on the ISO weekdays given
    (1 = Monday; the weekday of the shift's start)."""

    contact: str
    start: str = "00:00"
    end: str = "00:00"
    weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", v.strip())
        if not m:
            raise ValueError(f"expected a local time like '08:30', got {v!r}")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @field_validator("weekdays")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 or d > 7 for d in v):
            raise ValueError("weekdays are ISO numbers 1 (Monday) .. 7 (Sunday), at least one")
        return sorted(set(v))


class OnCallContact(_Strict):
    """A person (or desk) that can be paged, through the named `channels` (names from the
    top-level `channels` list)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$")
    channels: list[str] = Field(min_length=1)


class EscalationStep(_Strict):
    """One rung of the ladder: page `contacts` once the previous rung has gone unacknowledged
    for `after` (the first rung: when the alert opens or escalates; its `after` is ignored).
    A contact named `duty` means whoever the rota has on shift at that moment."""

    contacts: list[str] = Field(min_length=1)
    after: Duration = timedelta(minutes=15)


DUTY = "duty"


class OnCallConfig(_Strict):
    """The on-call rota and escalation ladder (issue 6): who is paged for which level, and who
    next when nobody acknowledges in time. Levels without a ladder only reach the broadcast
    channels."""

    contacts: list[OnCallContact] = Field(default_factory=list)
    rota: list[RotaShift] = Field(default_factory=list)
    ladders: dict[Level, list[EscalationStep]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> "OnCallConfig":
        names = [c.name for c in self.contacts]
        if len(set(names)) != len(names):
            raise ValueError("oncall.contacts: each name may be used once")
        if DUTY in names:
            raise ValueError(f"oncall.contacts: {DUTY!r} is reserved for the person on shift (the rota)")
        known = set(names)
        for shift in self.rota:
            if shift.contact not in known:
                raise ValueError(f"oncall.rota: unknown contact {shift.contact!r} (known: {', '.join(sorted(known)) or 'none'})")
        for level, steps in self.ladders.items():
            if not steps:
                raise ValueError(f"oncall.ladders.{level}: at least one step")
            for i, step in enumerate(steps):
                for c in step.contacts:
                    if c == DUTY and not self.rota:
                        raise ValueError(f"oncall.ladders.{level}[{i}]: {DUTY!r} needs a rota")
                    if c != DUTY and c not in known:
                        raise ValueError(f"oncall.ladders.{level}[{i}]: unknown contact {c!r} (known: {', '.join(sorted(known)) or 'none'})")
                if i > 0 and step.after <= timedelta(0):
                    raise ValueError(f"oncall.ladders.{level}[{i}].after must be positive")
        return self




class AlertsConfig(_Strict):
    interval: Duration = timedelta(minutes=1)
    window: Duration = timedelta(minutes=15)
    baseline: Duration = timedelta(hours=6)
    # expected count per window never drops below this, so 0 -> 2 is not a spike
    baseline_floor: float = Field(default=1.0, gt=0.0)
    cooldown: Duration = timedelta(minutes=30)
    levels: list[LevelRule] = Field(
        default_factory=lambda: [
            LevelRule(level="blue", min_count=5, min_ratio=2.0),
            LevelRule(level="yellow", min_count=10, min_ratio=3.0),
            LevelRule(level="orange", min_count=20, min_ratio=5.0, min_negative_share=0.4),
            LevelRule(level="red", min_count=40, min_ratio=8.0, min_negative_share=0.5),
        ]
    )
    # first authoritative statement expected within (State Council: 5 h; golden 4 hours)
    deadlines: dict[Literal["blue", "yellow", "orange", "red"], Duration] = Field(
        default_factory=lambda: {
            "blue": timedelta(hours=48),
            "yellow": timedelta(hours=24),
            "orange": timedelta(hours=4),
            "red": timedelta(hours=1),
        }
    )

    # --- added by the alerts module (additive; defaults keep older files valid) -------------
    # tail test: "negbin" models the overdispersion of real volume (falls back to Poisson when
    # the baseline shows none); "poisson" for strictly count-like streams
    test: Literal["poisson", "negbin"] = "negbin"
    # cap on the baseline's variance/mean ratio, so a baseline spanning a daily swing cannot
    # make the test blind
    max_dispersion: float = Field(default=10.0, ge=1.0)
    # auto-resolve: volume over the last `resolve_after` is back within resolve_ratio x baseline
    resolve_after: Duration = timedelta(minutes=30)
    resolve_ratio: float = Field(default=1.5, ge=1.0)
    # an open alert whose level holds gets an "updated" event at most this often
    update_every: Duration = timedelta(minutes=15)
    # representative posts kept per kind (highest reach, earliest, most negative) and how many
    # posts of the window are scanned to choose them
    evidence_posts: int = Field(default=3, ge=1, le=50)
    evidence_scan: int = Field(default=500, ge=10, le=10_000)
    # posts at or above this rumour likelihood are listed as rumour candidates ("unverified")
    rumor_candidate_min: float = Field(default=0.7, ge=0.0, le=1.0)
    # same-time-of-day reference: the window's count on each of the previous `seasonal_days`
    # days (0 = off); the expectation is the larger of the recent and the seasonal one
    seasonal_days: int = Field(default=7, ge=0, le=56)
    # coverage gap: a source with no successful crawl for this many of its intervals raises a
    # `silence` alert at `silence_level` ("no alert" must never mean "no data")
    silence_after_intervals: float = Field(default=4.0, ge=1.0)
    silence_level: Literal["blue", "yellow", "orange", "red"] = "yellow"
    # the draft holding statement promises the next update within this time
    statement_next_update: Duration = timedelta(hours=1)
    # size of the count buckets the detector reads; None: the largest of 1m/5m/15m/1h/1d not
    # above `interval` (how often it runs) that divides window, baseline and resolve_after
    bucket: Duration | None = None

    # --- further rules (issue 6); each alert names the rule that set its level ---------------
    # a turn of opinion: negative share up against the baseline's share
    negative_share: list[NegativeShareRule] = Field(
        default_factory=lambda: [
            NegativeShareRule(level="yellow", min_negative=10, min_share=0.6, min_rise=0.25),
            NegativeShareRule(level="orange", min_negative=30, min_share=0.7, min_rise=0.35),
        ]
    )
    # a surge of posts at or above `rumor_min` rumour likelihood, judged like volume (count,
    # ratio and tail probability against their own baseline)
    rumor_min: float = Field(default=0.7, ge=0.0, le=1.0)
    rumor_levels: list[LevelRule] = Field(
        default_factory=lambda: [
            LevelRule(level="blue", min_count=3, min_ratio=3.0, max_p_value=0.01),
            LevelRule(level="yellow", min_count=10, min_ratio=5.0, max_p_value=0.001),
        ]
    )
    # one post from a very large account
    high_reach: list[HighReachRule] = Field(
        default_factory=lambda: [
            HighReachRule(level="blue", min_followers=1_000_000),
            HighReachRule(level="yellow", min_followers=10_000_000),
        ]
    )
    # official or national media picked the story up: the level of a firing alert goes up
    # `pickup_raise` steps (capped at red); it never opens an alert on its own
    pickup_tiers: list[SourceTier] = Field(default_factory=lambda: [SourceTier.official, SourceTier.national_media])
    pickup_raise: int = Field(default=1, ge=0, le=3)
    # what the volume and rumour rules count: each story cluster (posts sharing the inbox's
    # near-duplicate `cluster_id`; a post without one is its own story) once per window, so a
    # copy-paste campaign is one story with many shares (the figures give both); or every post
    count_by: Literal["posts", "clusters"] = "clusters"
    # multi-window confirmation: a volume spike opens an alert only when at least
    # `confirm_min` of these horizons confirm it too (0 = off); every window's figures are in
    # the alert's figures.rules.volume.confirm. An open thread's escalations are judged against
    # the baseline pinned at opening, without confirmation (the incident is already confirmed).
    confirm: list[ConfirmWindow] = Field(default_factory=_default_confirm)
    confirm_min: int = Field(default=1, ge=0)
    # per-topic threads (key "<watchlist>/topic:<topic>"): names from the `topics` list, [] = off
    topics: list[str] = Field(default_factory=list)
    # per-watchlist thresholds, keyed by watchlist name
    overrides: dict[str, AlertsOverride] = Field(default_factory=dict)
    # the on-call rota and the escalation ladder
    oncall: OnCallConfig = Field(default_factory=OnCallConfig)
    # after a statement is published: the next update is due this long after it, and a press
    # conference within this long of the alert opening for the levels listed (State Council:
    # 24 h for major incidents)
    press_conference: dict[Level, Duration] = Field(default_factory=lambda: {"red": timedelta(hours=24)})
    # before/after comparison of a published statement over this span on each side
    statement_effect_window: Duration = timedelta(hours=1)
    # outbox: a delivery claimed by a drainer that died is retried after this long
    delivery_lease: Duration = timedelta(minutes=5)
    # a notification not delivered within this long is given up ("expired"): stale pages are noise
    delivery_expiry: Duration = timedelta(hours=6)

    def _check_confirm(self, windows: list[ConfirmWindow], need: int, step: timedelta, where: str) -> None:
        """Confirmation windows must be countable in the detector's buckets and reachable."""
        names = [w.name for w in windows]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}confirm: window names must be unique, got {names}")
        if need > len(windows):
            raise ValueError(f"{where}confirm_min is {need} but only {len(windows)} confirm window(s) are given")
        for w in windows:
            for field_name in ("span", "lag"):
                value = getattr(w, field_name)
                if value is None:
                    continue
                if value < self.window:
                    raise ValueError(f"{where}confirm window {w.name!r}: {field_name} must be at least the window ({self.window})")
                if value % step:
                    raise ValueError(f"{where}confirm window {w.name!r}: {field_name} must be a whole number of buckets ({step})")

    def for_watchlist(self, name: str) -> "AlertsConfig":
        """This configuration with the watchlist's overrides applied (validated at load)."""
        o = self.overrides.get(name)
        if o is None:
            return self
        return self.model_copy(update={k: v for k, v in o.model_dump(exclude_none=True).items() if k in o.model_fields_set})

    @property
    def step(self) -> timedelta:
        """The count bucket the detector works in (see `bucket`)."""
        return self.bucket if self.bucket is not None else self._fitting_buckets()[-1]

    def _fitting_buckets(self) -> list[timedelta]:
        names = ("window", "baseline", "resolve_after")
        return [
            b for b in HISTOGRAM_BUCKETS
            if b <= max(self.interval, HISTOGRAM_BUCKETS[0])
            and all(getattr(self, n) >= b and getattr(self, n) % b == timedelta(0) for n in names)
        ]

    @model_validator(mode="after")
    def _windows(self) -> "AlertsConfig":
        if self.baseline < 2 * self.window:
            raise ValueError("baseline must cover at least two windows")
        # the detector reads per-bucket counts from `Store.histogram`, which buckets by these
        if self.bucket is not None:
            if self.bucket not in HISTOGRAM_BUCKETS:
                raise ValueError("bucket must be one of 1m, 5m, 15m, 1h, 1d (the index's histogram buckets)")
            step = self.bucket
        else:
            fits = self._fitting_buckets()
            if not fits:
                raise ValueError("window, baseline and resolve_after must be whole minutes (the detector counts per minute or coarser)")
            step = fits[-1]
        for name in ("window", "baseline", "resolve_after"):
            value = getattr(self, name)
            if value < step or value % step:
                raise ValueError(f"{name} must be a whole number of buckets ({step})")
        for name, rules in (("levels", self.levels), ("rumor_levels", self.rumor_levels), ("negative_share", self.negative_share), ("high_reach", self.high_reach)):
            levels = [r.level for r in rules]
            if len(set(levels)) != len(levels):
                raise ValueError(f"{name}: each level may have one rule only")
        self._check_confirm(self.confirm, self.confirm_min, step, "")
        for wl, o in self.overrides.items():
            if o.confirm is not None or o.confirm_min is not None:
                self._check_confirm(
                    o.confirm if o.confirm is not None else self.confirm,
                    o.confirm_min if o.confirm_min is not None else self.confirm_min,
                    step,
                    f"overrides.{wl}.",
                )
            for name in ("levels", "rumor_levels", "negative_share", "high_reach"):
                rules = getattr(o, name)
                if rules is not None and len({r.level for r in rules}) != len(rules):
                    raise ValueError(f"overrides.{wl}.{name}: each level may have one rule only")
        return self


class ChannelConfig(_Strict):
    """A notification channel: an Apprise URL (wecom://, dingtalk://, feishu://, slack://,
    tgram://, mailto://, json://...). The URL may name an environment variable: `env:NAME`."""

    name: str
    url: str
    min_level: Literal["blue", "yellow", "orange", "red"] = "blue"
    languages: list[str] = Field(default_factory=lambda: ["zh"])
    # added by the alerts module: a failed send is retried `retries` times, waiting `backoff`,
    # then 2x, 4x ... (other channels are not held up: each channel is sent on its own)
    retries: int = Field(default=3, ge=0, le=10)
    backoff: Duration = timedelta(seconds=5)
    # False: the channel is not paged by level, only when an on-call contact it belongs to is
    # paged (a person's phone should not receive every blue alert)
    broadcast: bool = True

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        known = ("zh", "en", "ar")
        for lang in v:
            if lang not in known:
                raise ValueError(f"no message templates for language {lang!r} (have {', '.join(known)})")
        if not v:
            raise ValueError("at least one language")
        return v


class StateConfig(_Strict):
    # None: sqlite file in the data directory
    url: str | None = None


class ElasticConfig(_Strict):
    url: str = "http://127.0.0.1:9200"
    index_prefix: str = "yuqing-posts"
    api_key: SecretStr | None = None
    verify_certs: bool = True
    timeout: float = Field(default=30.0, gt=0)


class IndexConfig(_Strict):
    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    # None: index.db in the data directory
    sqlite_path: str | None = None
    elasticsearch: ElasticConfig = Field(default_factory=ElasticConfig)


class NlpOverride(_Strict):
    """A deployer's standard sequence-classification model answering one task (nlp.single_task)."""

    # directory: a bare name is under models_dir, a path (with "/") is relative to the config file
    model: str = Field(min_length=1)
    # the model's label names -> ours, for models whose config says only LABEL_0, LABEL_1, ...
    # (for topics: -> the names of the configured topics, checked against `topics`)
    labels: dict[str, str] | None = None


class SentimentOverride(NlpOverride):
    labels: dict[str, Literal["negative", "neutral", "positive"]] | None = None


class RumorOverride(NlpOverride):
    labels: dict[str, Literal["not_rumor", "rumor"]] | None = None


class NlpOverrides(_Strict):
    """`nlp.overrides`: at most one model per task; `{sentiment: cardiff}` is short for
    `{sentiment: {model: cardiff}}`."""

    sentiment: SentimentOverride | None = None
    rumor: RumorOverride | None = None
    topics: NlpOverride | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"model": o} if isinstance(o, str) else o) for k, o in v.items()}
        return v

    def items(self) -> list[tuple[str, NlpOverride]]:
        """(task, override) for each task that has one, in a fixed order."""
        return [(t, o) for t in ("sentiment", "rumor", "topics") if (o := getattr(self, t)) is not None]


class NlpConfig(_Strict):
    model: str = "default"
    batch_size: int = Field(default=32, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # cores the classifier uses (None: all); with ONNX Runtime on a CPU, that many single-threaded
    # streams (nlp.classifier)
    threads: int | None = Field(default=None, ge=1)
    # tasks answered by another model than `model`: {sentiment: cardiff} or {sentiment: {model: ..., labels: ...}}
    overrides: NlpOverrides = Field(default_factory=NlpOverrides)
    # a directory written by `yuqing topic-corpus` from the deployment's own posts (relative to the
    # config file): the topics learn the words their examples never used from it (nlp.topics)
    topic_corpus: str | None = None


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    cors_origins: list[str] = Field(default_factory=list)


class PrivacyConfig(_Strict):
    # None: a random key is generated once and kept in the data directory (0600)
    pseudonym_key: SecretStr | None = None
    retention_days: int = Field(default=180, ge=1)


class WorkerConfig(_Strict):
    batch_size: int = Field(default=64, ge=1, le=10_000)
    lease: Duration = timedelta(minutes=5)
    poll: Duration = timedelta(seconds=1)
    max_attempts: int = Field(default=5, ge=1)


class Settings(BaseSettings):
    """The whole configuration. Paths are relative to the config file's directory."""

    model_config = SettingsConfigDict(
        env_prefix="YUQING_", env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    agency: str = "Agency"
    timezone: str = "Asia/Shanghai"
    data_dir: str = "./data"
    models_dir: str = "./models"
    sources: list[SourceConfig] = Field(default_factory=list)
    watchlists: list[WatchlistConfig] = Field(default_factory=list)
    topics: list[TopicConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    channels: list[ChannelConfig] = Field(default_factory=list)
    state: StateConfig = Field(default_factory=StateConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    nlp: NlpConfig = Field(default_factory=NlpConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    # where the file was read from; relative paths resolve against its directory
    base_dir: str = "."

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the file (the file's values arrive as init kwargs)
        return (env_settings, init_settings)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_tz(v)

    @model_validator(mode="after")
    def _unique_names(self) -> "Settings":
        for field in ("sources", "watchlists", "topics", "channels"):
            seen: set[str] = set()
            for item in getattr(self, field):
                if item.name in seen:
                    raise ValueError(f"{field}: the name {item.name!r} is used twice")
                seen.add(item.name)
        return self

    @model_validator(mode="after")
    def _alerts_references(self) -> "Settings":
        """The alerts section (and a topics model's label mapping) names watchlists, topics and
        channels defined elsewhere in the file; a misspelt name would be a rule or a page that
        never happens."""
        wls = {w.name for w in self.watchlists}
        for name in self.alerts.overrides:
            if name not in wls:
                raise ValueError(f"alerts.overrides: no watchlist named {name!r} (known: {', '.join(sorted(wls)) or 'none'})")
        topics = {t.name for t in self.topics}
        for name in list(self.alerts.topics) + [t for o in self.alerts.overrides.values() for t in (o.topics or [])]:
            if name not in topics:
                raise ValueError(f"alerts.topics: no topic named {name!r} (known: {', '.join(sorted(topics)) or 'none'})")
        t_over = self.nlp.overrides.topics
        if t_over is not None and not topics:
            raise ValueError("nlp.overrides.topics: a topics model answers on the configured taxonomy, and `topics` is empty")
        for target in (t_over.labels or {}).values() if t_over is not None else ():
            if target not in topics:
                raise ValueError(f"nlp.overrides.topics.labels: no topic named {target!r} (known: {', '.join(sorted(topics)) or 'none'})")
        channels = {c.name for c in self.channels}
        for contact in self.alerts.oncall.contacts:
            for ch in contact.channels:
                if ch not in channels:
                    raise ValueError(
                        f"alerts.oncall.contacts.{contact.name}: no channel named {ch!r} (known: {', '.join(sorted(channels)) or 'none'})"
                    )
        return self

    # -- resolved paths -------------------------------------------------------------------
    def path(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (Path(self.base_dir) / q).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @property
    def model_path(self) -> Path:
        m = Path(self.nlp.model)
        return m if m.is_absolute() or "/" in self.nlp.model else self.path(self.models_dir) / m

    @property
    def topic_corpus_path(self) -> Path | None:
        """`nlp.topic_corpus` resolved against the configuration file, or None."""
        return self.path(self.nlp.topic_corpus) if self.nlp.topic_corpus else None

    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.data_path / 'state.db'}"

    @property
    def sqlite_index_path(self) -> Path:
        return self.path(self.index.sqlite_path) if self.index.sqlite_path else self.data_path / "index.db"

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"no source named {name!r} (known: {known})")


class ConfigError(Exception):
    """A configuration problem, worded for the person who edits the file."""


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at `loc`, or of its nearest existing parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(part):
                    nxt = v
                    line = k.start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_yaml_mapping(p: Path, what: str, expected: str) -> tuple[str, dict[str, Any]]:
    """Read a YAML file that must hold a mapping: (its text, for line numbers; the mapping).
    Every way it can be unreadable is a ConfigError naming the file (and line:column for YAML
    syntax), so the app's config and the training config fail the same way."""
    if not p.exists():
        raise ConfigError(f"{p}: {what} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}): save the file as UTF-8") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{p}{at}: invalid YAML: {problem}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of {expected}, got {type(loaded).__name__}")
    return text, loaded


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read, validate and return the configuration.

    `path` None: `$YUQING_CONFIG`, else `./config.yaml`, else defaults only. Raises ConfigError
    with every problem listed as `file:line: key: what was expected`.
    """
    if path is None:
        path = os.environ.get("YUQING_CONFIG") or ("config.yaml" if Path("config.yaml").exists() else None)
    data: dict[str, Any] = {}
    text = ""
    where = "<defaults>"
    if path is not None:
        p = Path(path)
        where = str(p)
        text, data = read_yaml_mapping(p, "configuration file", "settings at the top level")
        data.setdefault("base_dir", str(p.resolve().parent))
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = _line_of(text, loc) if text else None
            at = f"{where}:{line}" if line else where
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None or "got" in err["msg"] else f" (got {got!r})"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{at}: {_format_loc(loc)}: {msg}{shown}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
