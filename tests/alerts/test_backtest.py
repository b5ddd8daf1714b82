"""`alerts.backtest.main`: the contract the benchmarks rely on."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alerts.backtest import main
from tests.alerts.streams import draw

START = datetime(2015, 2, 26, 21, 42, 53)


def _write(path: Path, counts: np.ndarray, step: timedelta = timedelta(minutes=5), skip: set[int] | None = None) -> Path:
    lines = ["timestamp,value"]
    for i, c in enumerate(counts):
        if skip and i in skip:
            continue
        lines.append(f"{(START + i * step).strftime('%Y-%m-%d %H:%M:%S')},{int(c)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(argv: list[str]) -> tuple[int, list[dict]]:
    buf = io.StringIO()
    rc = main(argv, out=buf)
    return rc, [json.loads(line) for line in buf.getvalue().splitlines()]


def _spiky(n: int = 3 * 288, at: int = 2 * 288 + 100) -> np.ndarray:
    rate = np.full(n, 40.0)
    rate[at : at + 12] = 400.0  # an hour at 10x
    return draw(rate, seed=5)


def test_one_line_per_alert_raised_with_the_csv_timestamp(tmp_path: Path) -> None:
    at = 2 * 288 + 100
    csv = _write(tmp_path / "s.csv", _spiky(at=at))
    rc, alerts = _run(["--series", str(csv), "--config", str(_cfg(tmp_path))])
    assert rc == 0
    assert len(alerts) == 1  # one hour of spike: one alert, not one per interval
    a = alerts[0]
    assert set(a) == {"timestamp", "level", "score", "rule"}
    assert a["timestamp"] == (START + at * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    assert a["level"] in ("blue", "yellow", "orange", "red") and a["rule"] == "volume"
    assert a["score"] > 10


def _cfg(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "config.yaml"
    p.write_text("alerts:\n  window: 15m\n  baseline: 6h\n  seasonal_days: 1\n" + extra, encoding="utf-8")
    return p


def test_no_look_ahead(tmp_path: Path) -> None:
    counts = draw(np.where(np.arange(3 * 288) % 200 < 6, 300.0, 30.0), seed=9)  # a burst every 200 slots
    full = _write(tmp_path / "full.csv", counts)
    rc, everything = _run(["--series", str(full), "--config", str(_cfg(tmp_path))])
    assert rc == 0 and len(everything) >= 3
    cut = 2 * 288
    part = _write(tmp_path / "part.csv", counts[:cut])
    rc, prefix = _run(["--series", str(part), "--config", str(_cfg(tmp_path))])
    limit = (START + (cut - 1) * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    assert prefix == [a for a in everything if a["timestamp"] <= limit]


def test_interval_inferred_or_given_and_short_history(tmp_path: Path) -> None:
    counts = np.full(40, 20)
    counts[30:33] = 200  # two and a half hours in: a short history must still be judged
    csv = _write(tmp_path / "s.csv", counts)
    rc, inferred = _run(["--series", str(csv), "--config", str(_cfg(tmp_path))])
    rc2, given = _run(["--series", str(csv), "--interval", "5m", "--config", str(_cfg(tmp_path))])
    assert rc == rc2 == 0 and inferred == given
    assert [a["timestamp"] for a in inferred] == [(START + 30 * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")]


def test_gaps_are_not_spikes(tmp_path: Path) -> None:
    counts = np.full(200, 20)
    csv = _write(tmp_path / "s.csv", counts, skip=set(range(100, 110)))
    rc, alerts = _run(["--series", str(csv), "--config", str(_cfg(tmp_path))])
    assert rc == 0 and alerts == []


@pytest.mark.parametrize(
    "content,message",
    [
        ("time,count\n2015-01-01 00:00:00,1\n", "expected the header"),
        ("timestamp,value\n2015-01-01 00:00:00,1\nyesterday,2\n", ":3: timestamp 'yesterday'"),
        ("timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,x\n", "is not a number"),
        ("timestamp,value\n2015-01-01 00:05:00,1\n2015-01-01 00:00:00,1\n", "must increase"),
    ],
)
def test_bad_series_exit_2_with_the_line(tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content, encoding="utf-8")
    assert main(["--series", str(p), "--config", str(_cfg(tmp_path))]) == 2
    assert message in capsys.readouterr().err


def test_interval_that_does_not_fit_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _write(tmp_path / "s.csv", np.full(50, 3))
    assert main(["--series", str(csv), "--interval", "1h", "--config", str(_cfg(tmp_path))]) == 2
    assert "interval 1:00:00" in capsys.readouterr().err


def test_verdicts_report_on_stderr_and_stdout_unchanged(tmp_path: Path) -> None:
    series = _write(tmp_path / "s.csv", _spiky())
    plain, with_v, err = io.StringIO(), io.StringIO(), io.StringIO()
    assert main(["--series", str(series)], out=plain) == 0
    lines = [json.loads(x) for x in plain.getvalue().splitlines()]
    assert lines
    first = datetime.fromisoformat(lines[0]["timestamp"])
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text(
        json.dumps({"kind": "false_positive", "start": str(first - timedelta(minutes=5)), "end": str(first + timedelta(minutes=5))}) + "\n"
        + json.dumps({"kind": "snooze", "start": "2015-01-01T00:00:00Z", "end": "2015-01-02T00:00:00Z"}) + "\n",
        encoding="utf-8",
    )
    assert main(["--series", str(series), "--verdicts", str(verdicts)], out=with_v, err=err) == 0
    assert with_v.getvalue() == plain.getvalue()  # the benchmark contract holds
    report = json.loads(err.getvalue())
    assert report["verdicts"] == {"false_positives": 1, "snoozes": 1}
    assert report["raised"] == len(lines) and report["on_false_positive"] == 1 and report["in_snooze"] == 0
    assert report["flagged"] == [{"timestamp": lines[0]["timestamp"], "false_positive": True, "snooze": False}]


def test_verdicts_file_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = _write(tmp_path / "s.csv", _spiky())
    bad = tmp_path / "v.jsonl"
    bad.write_text('{"kind": "maybe", "start": "2015-01-01", "end": "2015-01-02"}\n', encoding="utf-8")
    assert main(["--series", str(series), "--verdicts", str(bad)], out=io.StringIO()) == 2
    assert "v.jsonl:1: kind must be" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'nowhere'}\n", encoding="utf-8")
    assert main(["--series", str(series), "--config", str(cfg), "--verdicts", "state"], out=io.StringIO()) == 2
    assert "no state database" in capsys.readouterr().err


def test_confirmation_on_the_same_time_last_week(tmp_path: Path) -> None:
    """The same hour-long spike on day 0 and a week later: with "same time last week" as the
    confirmation, the second is the usual for that hour and is not raised (the first is: there
    is no last week before the series, and zero history confirms); without it, both are."""
    day = 288
    rate = np.full(8 * day + 50, 40.0)
    for at in (day // 2, 7 * day + day // 2):
        rate[at : at + 12] = 400.0
    csv = _write(tmp_path / "weekly.csv", draw(rate, seed=11))
    week = "  confirm:\n    - {name: same time last week, lag: 7d, min_ratio: 1.5}\n"
    rc, confirmed = _run(["--series", str(csv), "--config", str(_cfg(tmp_path, week + "  confirm_min: 1\n"))])
    assert rc == 0
    first = (START + (day // 2) * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    assert [a["timestamp"] for a in confirmed] == [first]
    rc, unconfirmed = _run(["--series", str(csv), "--config", str(_cfg(tmp_path, week + "  confirm_min: 0\n"))])
    assert rc == 0 and len(unconfirmed) == 2 and unconfirmed[0]["timestamp"] == first
