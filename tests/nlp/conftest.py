"""Fixtures for the NLP engine: a tiny shared-data directory and a tiny trained model directory.

The model is built at test time by the project's own training code (`nlp.train.train`) on a
synthetic data set in the exact layout of `../shared/data`, so the fixture exercises the readers,
tokenizer training, the multi-task loop, saving and the evaluation card — in a few seconds.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "models" / "bootstrap"

_WORDS = {
    "en": {"positive": ["good", "great", "love", "wonderful", "happy"],
           "negative": ["bad", "awful", "hate", "terrible", "angry"],
           "neutral": ["meeting", "schedule", "report", "tuesday", "statement"],
           "filler": ["the", "city", "today", "people", "bus", "water", "news", "office"]},
    "ar": {"positive": ["جميل", "رائع", "سعيد", "ممتاز"],
           "negative": ["سيء", "فظيع", "غاضب", "كارثة"],
           "neutral": ["الاجتماع", "الساعة", "التقرير", "البيان"],
           "filler": ["في", "المدينة", "اليوم", "الناس", "الماء"]},
    "zh": {"positive": ["很好", "满意", "喜欢", "干净", "推荐"],
           "negative": ["很差", "失望", "太慢", "难吃", "投诉"],
           "filler": ["酒店", "房间", "外卖", "服务", "价格", "我们", "今天"]},
}
CATEGORIES = {"书籍": ["书", "作者", "阅读"], "水果": ["苹果", "新鲜", "甜"], "手机": ["屏幕", "电池", "系统"]}


def _sentence(rng: random.Random, lang: str, label: str) -> str:
    w = _WORDS[lang]
    words = rng.sample(w[label], 2) + rng.sample(w["filler"], 3)
    rng.shuffle(words)
    return ("" if lang == "zh" else " ").join(words)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _rumor_row(rng: random.Random, i: int, rumor: int) -> dict[str, Any]:
    t0 = 1_400_000_000 + i * 1000
    words = ["震惊", "紧急扩散", "转发救人", "内部消息"] if rumor else ["通报", "发布会", "公告", "数据显示"]
    text = "".join(rng.sample(words, 2)) + "".join(rng.sample(["市民", "医院", "今天", "北京", "学校"], 3))
    reposts = [{"date": f"2014-05-14 0{1 + k // 30}:{k % 60:02d}:00", "uid": str(k), "is_reply": k % 3 == 0,
                "text": rng.choice(["谣言吧", "真的假的？", "求证"] if rumor else ["转发", "支持", "收到"])}
               for k in range(rng.randint(0, 8))]
    return {"id": f"r{i}", "lang": "zh", "text": text, "rumor": rumor, "time": t0,
            "user": {"verified": not rumor, "followers": rng.randint(10, 100000), "friends": 100, "messages": 50,
                     "time": t0 - 86400 * 400},
            "reposts_count": len(reposts), "comments_count": 3, "pics": rumor, "has_url": False, "reposts": reposts,
            "reposts_total": len(reposts)}


def make_shared_data(root: Path, n: int = 120, seed: int = 3) -> Path:
    """A miniature `../shared/data` with learnable synthetic labels."""
    rng = random.Random(seed)
    s = root / "sentiment"
    for lang, labels in (("en", ["negative", "neutral", "positive"]), ("ar", ["negative", "neutral", "positive"])):
        for split, m in (("train", n), ("dev", n // 4)):
            _write(s / lang / f"{split}.jsonl", [{"id": f"{lang}-{split}-{i}", "lang": lang, "text": _sentence(rng, lang, labels[i % 3]),
                                                  "sentiment": labels[i % 3], "source": "synthetic"} for i in range(m)])
    _write(s / "en/extra_tweeteval.jsonl", [{"id": f"tw-{i}", "lang": "en", "text": _sentence(rng, "en", ["negative", "neutral", "positive"][i % 3]),
                                             "sentiment": ["negative", "neutral", "positive"][i % 3], "source": "synthetic"} for i in range(n // 2)])
    _write(s / "ar/extra_arsarcasm.jsonl", [{"id": f"as-{i}", "lang": "ar", "text": _sentence(rng, "ar", ["negative", "neutral", "positive"][i % 3]),
                                             "sentiment": ["negative", "neutral", "positive"][i % 3], "sarcasm": False, "dialect": "msa",
                                             "source": "synthetic"} for i in range(n // 2)])
    for split, m in (("train", n), ("dev", n // 2)):
        rows = []
        for i in range(m):
            label = ["negative", "positive"][i % 2]
            cat = list(CATEGORIES)[i % 3]
            text = _sentence(rng, "zh", label) + "".join(rng.sample(CATEGORIES[cat], 2))
            rows.append({"id": f"zh-{split}-{i}", "lang": "zh", "text": text, "sentiment": label, "source": "synthetic", "category": cat})
        _write(s / "zh" / f"{split}.jsonl", rows)
    for split, m in (("train", n), ("dev", n // 3)):
        _write(root / "rumor/ced" / f"{split}.jsonl.gz", [_rumor_row(rng, i + (0 if split == "train" else 10_000), i % 2) for i in range(m)])
    return root


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shared_data(tmp_path_factory.mktemp("shared") / "data")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Any]:
    """A tiny model trained by nlp.train on the synthetic data, saved as a model directory."""
    import torch

    from nlp.train import TrainConfig, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    cfg = TrainConfig(data=shared_data, out=out, name="tiny", version="0.0.1", vocab_size=400, hidden=32, layers=1,
                      heads=2, max_length=64, batch_size=16, lr=3e-3, warmup_steps=5, minutes=5.0, max_steps=120,
                      tokenizer_unlabelled=200, weights_dtype="float32", threads=1, seed=1)
    torch.manual_seed(0)
    summary = train(cfg, log=lambda s: None)
    summary["dir"] = out
    return summary


@pytest.fixture(scope="session")
def tiny_model_dir(trained: dict[str, Any]) -> Path:
    return trained["dir"]


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model directory that a test may damage."""
    import shutil

    dst = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, dst)
    return dst


@pytest.fixture
def torch_threads():  # type: ignore[no-untyped-def]
    """`Classifier.load(threads=N)` sets torch's process-wide thread count: put it back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
