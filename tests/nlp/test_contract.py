"""`yuqing classify` contract: one output line per input line, same order, errors in place."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path


from nlp.contract import main

ROOT = Path(__file__).resolve().parents[2]
OUT_KEYS = {"id", "lang", "sentiment", "sentiment_scores", "topics", "rumor", "model"}


def _run(argv: list[str], lines: list[str] | bytes) -> tuple[int, list[dict], str]:
    stdin = io.BytesIO(lines) if isinstance(lines, bytes) else io.StringIO("".join(l + "\n" for l in lines))
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdin, out, err)
    return rc, [json.loads(l) for l in out.getvalue().splitlines()], err.getvalue()


def test_contract_end_to_end_in_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text("- name: water\n  description: water supply\n  keywords: [停水, water]\n  examples: [停水三天了]\n"
                      "- name: transport\n  keywords: [公交, bus]\n", encoding="utf-8")
    huge = "这是一个很长的帖子。" * 120_000  # > 1 MB of UTF-8
    lines = [
        json.dumps({"id": "zh1", "text": "小区停水三天了，物业太差了"}, ensure_ascii=False),
        json.dumps({"id": "en1", "text": "Great job by the water office today!"}),
        json.dumps({"id": "ar1", "text": "الخدمة سيئة جدا اليوم في المدينة"}, ensure_ascii=False),
        json.dumps({"id": "mix", "text": "公交 bus 又晚点 late again 😡", "lang": "zh"}, ensure_ascii=False),
        json.dumps({"id": "empty", "text": ""}),
        json.dumps({"id": 42, "text": huge}, ensure_ascii=False),
        '{"id": "broken", "text": ',
        "[1, 2, 3]",
        json.dumps({"text": "no id"}),
        json.dumps({"id": "badtext", "text": 5}),
        "",
        json.dumps({"id": "rum", "text": "紧急扩散！", "time": 1400000000, "user": {"verified": False, "followers": 12},
                    "pics": 1, "has_url": False, "reposts": [{"date": "2014-05-14 01:10:00", "text": "谣言吧"}],
                    "reposts_count": 1}, ensure_ascii=False),
        json.dumps({"id": "badctx", "text": "x", "reposts": "many"}),
        json.dumps({"id": "nulltext", "text": None}),
    ]
    rc, out, err = _run(["--model", str(tiny_model_dir), "--topics", str(topics), "--batch-size", "4"], lines)
    assert rc == 0, err
    assert len(out) == len(lines)
    by = [o.get("id", o.get("line")) for o in out]
    assert by == ["zh1", "en1", "ar1", "mix", "empty", "42", 7, 8, 9, "badtext", 11, "rum", "badctx", "nulltext"]
    for o in out:
        if "error" in o:
            continue
        assert set(o) == OUT_KEYS
        assert o["model"] == "tiny@0.0.1"
        assert o["sentiment"] in ("negative", "neutral", "positive")
        assert abs(sum(o["sentiment_scores"].values()) - 1) < 1e-4
        assert 0 <= o["rumor"] <= 1
        assert all(set(t) == {"topic", "score"} for t in o["topics"])
    assert [o["lang"] for o in out[:4]] == ["zh", "en", "ar", "zh"]
    assert out[0]["topics"][0]["topic"] == "water"
    assert out[4]["lang"] is None and out[4]["sentiment"] == "neutral" and out[4]["topics"] == []
    assert out[5]["lang"] == "zh"
    assert "invalid JSON" in out[6]["error"]
    assert "expected a JSON object" in out[7]["error"]
    assert "'id'" in out[8]["error"]
    assert out[9] == {"id": "badtext", "error": "'text' must be a string, got int"}
    assert out[10] == {"line": 11, "error": "empty line"}
    assert "error" not in out[11]
    assert "'reposts' has the wrong type" in out[12]["error"]
    assert out[13]["sentiment"] == "neutral"


def test_undecodable_line_is_an_error_and_the_rest_go_on(tiny_model_dir: Path) -> None:
    data = b'{"id": "a", "text": "hello"}\n{"id": "b", "text": "\xff\xfe"}\n{"id": "c", "text": "bye"}\n'
    rc, out, _ = _run(["--model", str(tiny_model_dir), "--topics", "/dev/null"], data)
    assert rc == 0
    assert [o.get("id", o.get("line")) for o in out] == ["a", 2, "c"]
    assert "not UTF-8" in out[1]["error"]


def test_missing_model_exits_non_zero_with_a_message(tmp_path: Path) -> None:
    rc, out, err = _run(["--model", str(tmp_path / "missing"), "--topics", "/dev/null"], ['{"id": 1, "text": "x"}'])
    assert rc == 2 and out == []
    assert "cannot load model" in err and "missing" in err


def test_bad_topics_file_exits_non_zero(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("- name: a\n  colour: red\n")
    rc, _, err = _run(["--model", str(tiny_model_dir), "--topics", str(bad)], [])
    assert rc == 2 and "topic [0]" in err and "colour" in err


def test_contract_as_a_real_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    inp = "\n".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False)
                    for i, t in enumerate(["你好，服务很好", "the service at the city office was terrible today"])) + "\nnot json\n"
    p = subprocess.run([sys.executable, "-m", "nlp.contract", "--model", str(tiny_model_dir), "--topics", "/dev/null"],
                       input=inp.encode(), capture_output=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    out = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == ["0", "1", 3]
    assert out[0]["lang"] == "zh" and out[1]["lang"] == "en"
