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
        texts = [r.get("text") or "" for e in self.train.get("rumor", []) for r in e.row.get("reposts") or []
                 if isinstance(r, dict)]
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


# -- the agency's own labelled posts (`yuqing export-labels`) ---------------------------------
SENTIMENT_VALUES = ("negative", "neutral", "positive")


def _labelled_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
                yield n, row
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 (byte {e.start})") from None


def read_labelled(path: Path) -> tuple[list[Example], int]:
    """Rows of a `yuqing export-labels` file (api/corrections.py): sentiment rows
    `{"id", "lang", "text", "sentiment", ...}` and rumour rows `{"id", "lang", "text", "rumor": 0|1,
    "time", "user", "reposts_count", "reposts", ...}` become Examples; topic rows (`"topics"`) are
    counted and returned as the second value (topics are taught by the taxonomy's examples, there
    is no trained topic head). A malformed row is a ValueError naming file:line and the key."""
    path = Path(path)
    out: list[Example] = []
    topics = 0
    for n, r in _labelled_rows(path):
        where = f"{path}:{n}"
        text = r.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string")
        lang = r.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise ValueError(f"{where}: 'lang' must be a string or null")
        lang = (lang or "und").split("-")[0].lower()
        src = str(r.get("source") or "agency")
        if "sentiment" in r:
            if r["sentiment"] not in SENTIMENT_VALUES:
                raise ValueError(f"{where}: 'sentiment' must be one of {', '.join(SENTIMENT_VALUES)}, got {r['sentiment']!r}")
            out.append(Example("sentiment", lang, text, r["sentiment"], src, r))
        elif "rumor" in r:
            if r["rumor"] not in (0, 1) or isinstance(r["rumor"], float):
                raise ValueError(f"{where}: 'rumor' must be 0 or 1, got {r['rumor']!r}")
            if r.get("reposts") is not None and not isinstance(r["reposts"], list):
                raise ValueError(f"{where}: 'reposts' must be a list")
            out.append(Example("rumor", lang, text, int(r["rumor"]), src, r))
        elif "topics" in r:
            if not isinstance(r["topics"], list):
                raise ValueError(f"{where}: 'topics' must be a list of topic names")
            topics += 1
        else:
            raise ValueError(f"{where}: expected one of 'sentiment', 'rumor' or 'topics' (the rows of yuqing export-labels)")
    return out, topics


def _corrected_at(e: Example) -> str:
    return str(e.row.get("corrected_at") or "")


def add_labelled(data: SharedData, paths: list[Path], dev_fraction: float = 0.2, seed: int = 17) -> dict[str, Any]:
    """Merge the agency's labelled posts into `data` (in place); returns what was done, for the manifest.

    Dedup before splitting, as for the shared data: rows are keyed by folded text; among agency
    rows the newest correction wins; an agency row whose text is in a shared dev set is dropped
    (the dev figures must stay clean); a shared training row whose text an analyst labelled is
    dropped (the analyst's label wins). Then a held-out slice becomes dev sets of their own
    (`agency_<lang>` for sentiment, stratified by label; `agency_rumor`, the newest posts by
    `time`: a chronological split, as rumours are judged on posts that come later).
    """
    rows: list[Example] = []
    topics = 0
    files: dict[str, str] = {}
    for p in paths:
        got, t = read_labelled(Path(p))
        rows += got
        topics += t
        files[str(p)] = file_sha256(Path(p))
    newest: dict[tuple[str, str], Example] = {}
    for e in sorted(rows, key=_corrected_at):  # later corrections replace earlier ones
        newest[(e.task, fold(e.text))] = e
    held = {fold(e.text) for v in data.dev.values() for e in v}
    kept = [e for e in newest.values() if fold(e.text) not in held and e.text.strip()]
    labelled = {(e.task, fold(e.text)) for e in kept}
    for key, v in data.train.items():
        task = "rumor" if key == "rumor" else "sentiment"
        data.train[key] = [e for e in v if (task, fold(e.text)) not in labelled]
    rng = random.Random(seed)
    groups: dict[str, list[Example]] = {}
    for e in kept:
        groups.setdefault("rumor" if e.task == "rumor" else e.lang, []).append(e)
    counts: dict[str, dict[str, int]] = {}
    for key, v in sorted(groups.items()):
        if key == "rumor":
            v = sorted(v, key=lambda e: (float(e.row.get("time") or 0), e.text))
            k = int(round(len(v) * dev_fraction))
            train, dev = v[: len(v) - k], v[len(v) - k :]
        else:
            train, dev = [], []
            for lab in SENTIMENT_VALUES:
                part = [e for e in v if e.label == lab]
                rng.shuffle(part)
                k = int(round(len(part) * dev_fraction))
                dev += part[:k]
                train += part[k:]
        data.train.setdefault(key, []).extend(train)
        if dev:
            data.dev[f"agency_{key}"] = dev
        counts[key] = {"train": len(train), "dev": len(dev)}
    data.files.update({f"labelled:{k}": v for k, v in files.items()})
    return {"files": files, "rows_read": len(rows), "kept_after_dedup": len(kept), "topic_rows_ignored": topics,
            "split": counts, "dev_fraction": dev_fraction}
