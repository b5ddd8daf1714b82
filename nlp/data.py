"""Readers for `../shared/data` (read in place, never copied into the repository).

Why here and not in train.py: evaluation, the benchmark and the tests read the same files, and the
rules (dedup before splitting, the held-out slice of ArSarcasm, the dev texts removed from
training) must be the same everywhere a figure is computed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yuqing.text import fold


@dataclass
class Example:
    task: str  # "sentiment" | "rumor"
    lang: str
    text: str
    label: Any  # sentiment label or 0/1
    source: str
    row: dict[str, Any] = field(default_factory=dict, repr=False)  # rumour rows keep their context


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for line in f:
            if line.strip():
                yield json.loads(line)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def _sentiment(path: Path, source: str) -> list[Example]:
    return [Example("sentiment", r["lang"], r.get("text") or "", r["sentiment"], source,
                    {"category": r["category"]} if r.get("category") else {}) for r in read_jsonl(path)]


def _dedup(train: list[Example], held: list[list[Example]]) -> list[Example]:
    """Drop training rows repeated within training or present in any held-out set (folded text),
    so dev figures are never inflated by memorised duplicates."""
    seen = {fold(e.text) for h in held for e in h}
    out = []
    for e in train:
        k = fold(e.text)
        if k in seen:
            continue
        seen.add(k)
        out.append(e)
    return out


@dataclass
class SharedData:
    root: Path
    train: dict[str, list[Example]]  # task/lang key -> rows
    dev: dict[str, list[Example]]
    files: dict[str, str]  # relative path -> sha256 (the data revision)

    def unlabelled_texts(self, limit: int = 60000, seed: int = 0) -> list[str]:
        """Repost/comment texts of the training cascades: real Weibo language for the tokenizer."""
        rng = random.Random(seed)
        texts = [r.get("text") or "" for e in self.train["rumor"] for r in e.row.get("reposts") or []]
        texts = [t for t in texts if len(t) > 3]
        rng.shuffle(texts)
        return texts[:limit]


def load_shared(root: Path, arsarcasm_dev_fraction: float = 0.1, seed: int = 13) -> SharedData:
    """Read every labelled file. ArSarcasm has no dev file, so a stratified, seeded slice of it is
    held out as `ar_sarcasm` dev (and never trained on)."""
    root = Path(root)
    s = root / "sentiment"
    need = [s / "zh/train.jsonl", s / "zh/dev.jsonl", s / "en/train.jsonl", s / "en/dev.jsonl",
            s / "en/extra_tweeteval.jsonl", s / "ar/train.jsonl", s / "ar/dev.jsonl",
            s / "ar/extra_arsarcasm.jsonl", root / "rumor/ced/train.jsonl.gz", root / "rumor/ced/dev.jsonl.gz"]
    for p in need:
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing (expected the layout of ../shared/data/README.md)")
    dev = {
        "zh": _sentiment(s / "zh/dev.jsonl", "zh_reviews"),
        "en": _sentiment(s / "en/dev.jsonl", "umsab_en"),
        "ar": _sentiment(s / "ar/dev.jsonl", "umsab_ar"),
    }
    sarc = _sentiment(s / "ar/extra_arsarcasm.jsonl", "arsarcasm")
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for e in sarc:
        by_label.setdefault(e.label, []).append(e)
    sarc_dev, sarc_train = [], []
    for lab in sorted(by_label):
        rows = by_label[lab]
        rng.shuffle(rows)
        k = int(round(len(rows) * arsarcasm_dev_fraction))
        sarc_dev += rows[:k]
        sarc_train += rows[k:]
    dev["ar_sarcasm"] = sarc_dev
    rumor_rows = {split: list(read_jsonl(root / f"rumor/ced/{split}.jsonl.gz")) for split in ("train", "dev")}
    rum = {split: [Example("rumor", r.get("lang") or "zh", r.get("text") or "", int(r["rumor"]), "ced", r)
                   for r in rows] for split, rows in rumor_rows.items()}
    dev["rumor"] = rum["dev"]
    held = list(dev.values())
    train = {
        "zh": _dedup(_sentiment(s / "zh/train.jsonl", "zh_reviews"), held),
        "en": _dedup(_sentiment(s / "en/train.jsonl", "umsab_en") + _sentiment(s / "en/extra_tweeteval.jsonl", "tweeteval"), held),
        "ar": _dedup(_sentiment(s / "ar/train.jsonl", "umsab_ar") + sarc_train, held),
        "rumor": _dedup(rum["train"], [rum["dev"]]),
    }
    files = {p.relative_to(root).as_posix(): file_sha256(p) for p in need}
    return SharedData(root=root, train=train, dev=dev, files=files)
