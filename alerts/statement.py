"""Draft holding statements ("边做边说": say what is known while acting), in zh / en / ar.

    draft_statement(alert, *, agency, lang, tz, now, next_update) -> Draft
    drafts_for(alert, settings, now) -> dict[str, Draft]        # the incident's languages

Rules the drafts keep, because a wrong first statement is worse than a late one:

- **Every fact traces to the alert.** Each variable piece of text is a `Fact` naming where it
  came from: a path into the alert (`evidence.posts[2].published_at`), the configuration
  (`config.agency`), an officer's verdict event (`events[5].payload.verdict`) or the promise of
  the next update (`schedule.next_update`). The template itself holds no names, numbers or
  times; the test removes every fact from the text and checks nothing variable is left.
- **No speculation about causes.** The templates state what is reported, what is being done
  (a bracketed placeholder the officer fills: the system does not know who is acting) and
  when the next update comes; never why it happened.
- **A claim is "unverified" until an officer marks it.** Rumour candidates come from the
  classifier; its score never makes a claim false. Only a `claim` event (AlertStore.mark_claim)
  with verdict `false` or `true` changes the wording, and it names the officer's verdict as its
  source.
- **Right-to-left done properly.** Arabic drafts are marked `rtl`, and every inserted fact is
  wrapped in Unicode first-strong isolates (U+2068 ... U+2069), so a Latin name, a time or a
  quoted Chinese claim cannot reorder the surrounding sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2

from yuqing.config import Settings

LANGS = ("zh", "en", "ar")
RTL = {"ar"}
FSI, PDI = "\u2068", "\u2069"
TEMPLATES = Path(__file__).parent / "templates"
SNIPPET = 60  # characters of a post quoted in a statement
Verdict = Literal["false", "true", "unverified"]

_AR_MONTHS = ("يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


@dataclass(frozen=True)
class Fact:
    """One variable piece of a draft: `text` as it appears, `value` the datum it renders and
    `source` where that datum is in the alert (or configuration, verdict, schedule)."""

    key: str
    text: str
    value: Any
    source: str


@dataclass
class Draft:
    lang: str
    direction: Literal["ltr", "rtl"]
    text: str
    facts: list[Fact] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)  # brackets the officer must fill


def format_time(t: datetime, lang: str, tz: str) -> str:
    """A time in the agency's zone, written the way each language's press releases write it."""
    local = t.astimezone(ZoneInfo(tz))
    off = local.utcoffset() or timedelta(0)
    sign = "+" if off >= timedelta(0) else "-"
    hours, rem = divmod(abs(int(off.total_seconds())), 3600)
    zone = f"UTC{sign}{hours:02d}:{rem // 60:02d}"
    if lang == "zh":
        label = "北京时间" if tz in ("Asia/Shanghai", "Asia/Chongqing", "PRC") else zone
        return f"{label}{local.year}年{local.month}月{local.day}日{local.hour}时{local.minute:02d}分"
    if lang == "ar":
        return f"{local.day} {_AR_MONTHS[local.month - 1]} {local.year}، الساعة {local:%H:%M} ({zone})"
    return f"{local:%H:%M} ({zone}) on {local.day} {_EN_MONTHS[local.month - 1]} {local.year}"


def snippet(text: str, n: int = SNIPPET) -> str:
    """The first `n` characters of a post, on one line (quoted, never paraphrased)."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= n else flat[: n - 1].rstrip() + "…"


def claim_verdicts(events: Sequence[Mapping[str, Any]] | None) -> dict[str, tuple[Verdict, int]]:
    """Latest officer verdict per post id, with the index of its event in `events`."""
    out: dict[str, tuple[Verdict, int]] = {}
    for i, ev in enumerate(events or []):
        if ev.get("kind") == "claim":
            p = ev.get("payload") or {}
            if p.get("post_id") and p.get("verdict") in ("false", "true", "unverified"):
                out[p["post_id"]] = (p["verdict"], i)
    return out


@lru_cache(maxsize=1)
def template_env() -> jinja2.Environment:
    """The one Jinja2 environment for `alerts/templates` (statements and notifications). Not
    autoescaped: the output is plain text; the HTML e-mail template escapes explicitly."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def draft_statement(
    alert: Mapping[str, Any],
    *,
    agency: str,
    lang: str,
    tz: str,
    now: datetime,
    next_update: timedelta,
) -> Draft:
    """The holding statement for one alert (an `AlertStore.get` dict, with evidence and events)."""
    if lang not in LANGS:
        raise ValueError(f"no statement template for language {lang!r} (have {', '.join(LANGS)})")
    evidence = alert.get("evidence") or {}
    posts = evidence.get("posts") or []
    facts: list[Fact] = []
    iso = (lambda s: f"{FSI}{s}{PDI}") if lang in RTL else (lambda s: s)

    def fact(key: str, text: str, value: Any, source: str) -> str:
        facts.append(Fact(key=key, text=text, value=value, source=source))
        return iso(text)

    ctx: dict[str, Any] = {"agency": fact("agency", agency, agency, "config.agency")}
    ctx["first_seen"] = ctx["subject"] = None
    if posts:
        i = min(range(len(posts)), key=lambda k: (posts[k]["published_at"], posts[k]["id"]))
        first = posts[i]
        t = datetime.fromisoformat(first["published_at"])
        ctx["first_seen"] = fact("first_seen", format_time(t, lang, tz), first["published_at"], f"evidence.posts[{i}].published_at")
        # what it is about: quoted from the earliest post in the draft's language, if any
        same = [k for k in range(len(posts)) if posts[k].get("lang") == lang]
        j = min(same, key=lambda k: (posts[k]["published_at"], posts[k]["id"])) if same else i
        field_name = "title" if posts[j].get("title") else "text"
        subj = snippet(posts[j][field_name])
        ctx["subject"] = fact("subject", subj, posts[j][field_name], f"evidence.posts[{j}].{field_name}")
    # official or national media picked it up: say who reported, and when (not that it is true)
    ctx["pickups"] = []
    seen_sources: set[str] = set()
    for i, p in enumerate(posts):
        if p.get("source_tier") in ("official", "national_media") and p["source"] not in seen_sources:
            seen_sources.add(p["source"])
            t = datetime.fromisoformat(p["published_at"])
            ctx["pickups"].append(
                {
                    "source": fact(f"pickup_source[{i}]", p["source"], p["source"], f"evidence.posts[{i}].source"),
                    "at": fact(f"pickup_at[{i}]", format_time(t, lang, tz), p["published_at"], f"evidence.posts[{i}].published_at"),
                }
            )
    verdicts = claim_verdicts(alert.get("events"))
    ctx["claims"] = []
    for i, c in enumerate(evidence.get("rumor_candidates") or []):
        verdict, ev_index = verdicts.get(c["id"], ("unverified", None))
        quote = fact(f"claim[{i}]", snippet(c["text"]), c["text"], f"evidence.rumor_candidates[{i}].text")
        if ev_index is not None:
            facts.append(Fact(f"verdict[{i}]", "", verdict, f"events[{ev_index}].payload.verdict"))
        ctx["claims"].append({"text": quote, "verdict": verdict})
    promised = now + next_update
    ctx["next_update"] = fact("next_update", format_time(promised, lang, tz), promised.astimezone(timezone.utc).isoformat(), "schedule.next_update")
    text = template_env().get_template(f"statement.{lang}.j2").render(**ctx).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    placeholders = re.findall(r"\[[^\]\n]+\]", text)
    return Draft(lang=lang, direction="rtl" if lang in RTL else "ltr", text=text, facts=facts, placeholders=placeholders)


def incident_languages(alert: Mapping[str, Any]) -> list[str]:
    """The languages the incident is discussed in (from the evidence), that have a template;
    Chinese first when none is known (the agency's own language)."""
    langs = [lang for lang, _ in (alert.get("evidence") or {}).get("languages") or [] if lang in LANGS]
    return langs or ["zh"]


def drafts_for(alert: Mapping[str, Any], settings: Settings, now: datetime) -> dict[str, Draft]:
    """One draft per incident language, with the configured agency, zone and update promise."""
    return {
        lang: draft_statement(
            alert,
            agency=settings.agency,
            lang=lang,
            tz=settings.timezone,
            now=now,
            next_update=settings.alerts.statement_next_update,
        )
        for lang in incident_languages(alert)
    }
