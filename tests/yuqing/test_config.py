"""A broken config fails at start with the file, the line, the key and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yuqing.config import ConfigError, load_settings, parse_duration

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_config_is_valid() -> None:
    s = load_settings(ROOT / "config.example.yaml")
    assert {w.name for w in s.watchlists} == {"agency", "director"}
    langs = {src.lang for src in s.sources if src.lang}
    assert {"zh", "en", "ar"} <= langs
    assert s.index.backend == "sqlite"
    assert s.state_url.startswith("sqlite:///") and s.state_url.endswith("data/state.db")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources:\n  - name: a\n    kind: feed\n    url: http://x/f\n    interval: often\n",
         ":5: sources[0].interval: expected a duration"),
        ("sources:\n  - name: a\n    kind: rss2\n    url: http://x/f\n", ":3: sources[0].kind: Input should be 'feed', 'html', 'forum', 'discourse', 'api' or 'telegram'"),
        ("sources:\n  - name: a\n    kind: feed\n    url: ftp://x\n", ":4: sources[0].url: expected an http(s) URL"),
        ("watchlists:\n  - name: w\n    terms: []\n", ":3: watchlists[0].terms"),
        ("alerts:\n  window: 5m\n  windoww: 3\n", ":3: alerts.windoww: Extra inputs are not permitted"),
        ("alerts:\n  window: 1h\n  baseline: 1h\n", "baseline must cover at least two windows"),
        ("timezone: Mars/Olympus\n", ":1: timezone: unknown time zone 'Mars/Olympus'"),
        ("watchlists:\n  - {name: w, terms: [a]}\n  - {name: w, terms: [b]}\n", "the name 'w' is used twice"),
        ("watchlists:\n  - name: w\n    terms: ['a AND (b']\n", ":3: watchlists[0].terms: term 1 'a AND (b': missing closing parenthesis"),
        ("sources: [\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level"),
    ],
)
def test_broken_config_names_file_line_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    msg = str(e.value)
    assert str(p) in msg
    assert expected in msg


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "gbk.yaml"
    p.write_bytes("agency: 兰山市水务局\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(p)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path, "index:\n  backend: sqlite\nalerts:\n  window: 5m\n")
    monkeypatch.setenv("YUQING_INDEX__BACKEND", "elasticsearch")
    monkeypatch.setenv("YUQING_STATE__URL", "postgresql+psycopg://u@db/yuqing")
    s = load_settings(p)
    assert s.index.backend == "elasticsearch"
    assert s.state_url == "postgresql+psycopg://u@db/yuqing"
    assert s.alerts.window.total_seconds() == 300
    monkeypatch.setenv("YUQING_INDEX__BACKEND", "mongodb")
    with pytest.raises(ConfigError, match="index.backend"):
        load_settings(p)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "data_dir: ./d\nmodels_dir: m\n")
    s = load_settings(p)
    assert s.data_path == tmp_path / "d"
    assert s.model_path == tmp_path / "m" / "default"
    assert s.topic_corpus_path is None
    s = load_settings(_write(tmp_path, "nlp:\n  topic_corpus: corpora/posts\n"))
    assert s.topic_corpus_path == tmp_path / "corpora" / "posts"


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1.5h").total_seconds() == 5400
    assert parse_duration(30).total_seconds() == 30
    assert parse_duration("PT15M").total_seconds() == 900
    assert parse_duration("P1DT2H").total_seconds() == 93600
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_cli_reports_broken_config_without_traceback(tmp_path: Path) -> None:
    p = _write(tmp_path, "sources:\n  - name: a\n    kind: feed\n    url: http://x/f\n    interval: often\n")
    r = subprocess.run(
        [sys.executable, "-m", "yuqing.cli", "check-config", "--config", str(p)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{p}:5: sources[0].interval" in r.stderr


def test_check_config_runs_each_spiders_own_checks(tmp_path: Path) -> None:
    """A preset typo passes the file's schema but no crawler could run it: check-config says so."""
    p = _write(tmp_path, "sources:\n  - name: board\n    kind: forum\n    url: http://x/forum\n    options:\n      preset: phpbbb\n")
    r = subprocess.run(
        [sys.executable, "-m", "yuqing.cli", "check-config", "--config", str(p)], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    assert "source 'board': options.preset: unknown forum preset 'phpbbb'" in r.stderr
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "yuqing.cli", "check-config", "--config", str(example)], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("ok: "), r.stderr
