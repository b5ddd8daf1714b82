"""Publication times to UTC with the source's zone, for the formats sources really use."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crawlers.dates import resolve_date

NOW = datetime(2024, 12, 16, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai


@pytest.mark.parametrize(
    ("value", "tz", "lang", "expected"),
    [
        ("2019年8月7日 06:56", "Asia/Shanghai", "zh", datetime(2019, 8, 6, 22, 56)),
        ("发布时间：2019年8月7日 06:56", "Asia/Shanghai", "zh", datetime(2019, 8, 6, 22, 56)),
        ("3小时前", "Asia/Shanghai", "zh", datetime(2024, 12, 16, 1, 0)),
        ("Posted: Sun Dec 15, 2024 7:05 am", "America/New_York", "en", datetime(2024, 12, 15, 12, 5)),
        ("15 ديسمبر 2024 10:30", "Asia/Riyadh", "ar", datetime(2024, 12, 15, 7, 30)),
        ("منذ 3 ساعات", "Asia/Riyadh", "ar", datetime(2024, 12, 16, 1, 0)),
        ("Sun, 15 Dec 2024 09:30:00 +0800", "America/New_York", None, datetime(2024, 12, 15, 1, 30)),
        ("Sun, 15 Dec 2024 09:30:00 -0000", "Asia/Shanghai", None, datetime(2024, 12, 15, 1, 30)),  # zone unknown
        ("2024-12-15T10:30:00+03:00", "Asia/Shanghai", None, datetime(2024, 12, 15, 7, 30)),
        ("2024-12-15 10:00", "Asia/Shanghai", None, datetime(2024, 12, 15, 2, 0)),
        ("2024-12-14T16:00:00Z", "Asia/Shanghai", None, datetime(2024, 12, 14, 16, 0)),
        ("Sun Dec 15 07:05:00 +0800 2024", "UTC", "zh", datetime(2024, 12, 14, 23, 5)),  # Weibo API
        ("今天 07:05", "Asia/Shanghai", "zh", datetime(2024, 12, 15, 23, 5)),
        ("昨天 22:10", "Asia/Shanghai", "zh", datetime(2024, 12, 15, 14, 10)),
        ("3分钟前", "Asia/Shanghai", "zh", datetime(2024, 12, 16, 3, 57)),
    ],
)
def test_resolve_date(value: str, tz: str, lang: str | None, expected: datetime) -> None:
    got = resolve_date(value, tz=tz, lang=lang, now=NOW)
    assert got == expected.replace(tzinfo=timezone.utc)
    assert got is not None and got.tzinfo is not None


def test_unreadable_and_implausible_dates_give_none() -> None:
    assert resolve_date("not a date at all", tz="UTC", lang="en", now=NOW) is None
    assert resolve_date("", tz="UTC", now=NOW) is None
    assert resolve_date(None, tz="UTC", now=NOW) is None
    # a week in the future is a misparse, not news
    assert resolve_date("2024-12-23T00:00:00Z", tz="UTC", now=NOW) is None


def test_naive_datetime_is_local_to_the_source() -> None:
    got = resolve_date(datetime(2024, 12, 15, 8, 0), tz="Asia/Shanghai", now=NOW)
    assert got == datetime(2024, 12, 15, 0, 0, tzinfo=timezone.utc)
