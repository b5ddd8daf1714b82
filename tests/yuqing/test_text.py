"""Folding is the same everywhere, and its OpenCC shortcut never changes a result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yuqing.text import _t2s, fold, normalize_arabic, to_simplified

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_fold_examples() -> None:
    assert fold("雲南省應急管理廳") == "云南省应急管理厅"
    assert fold("ＡＢＣ  Agency") == "abc agency"
    assert fold("وِزَارَةُ الصِّحَّة") == "وزاره الصحه"
    assert normalize_arabic("إدارة أمن آمنة") == "اداره امن امنه"
    assert fold("") == ""


def test_shortcut_agrees_with_opencc_on_real_chinese_text() -> None:
    path = DATA / "sentiment" / "zh" / "dev.jsonl"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:3000]
    texts += ["這個頭髮", "乾燥", "后来", "里面的裡面", "著名的著作", "於是", "台灣"]
    for t in texts:
        assert to_simplified(t) == _t2s().convert(t), t
