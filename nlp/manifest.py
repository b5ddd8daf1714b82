"""`manifest.json`: what a model directory holds, what it was trained on, and how good it is.

Why a manifest on top of Hugging Face's own files: `config.json` says how to build the network but
not which task each head answers, in which label order, on which languages, from which data, nor
whether the bytes on disk are the ones that were evaluated. The loader refuses a directory whose
files do not match their recorded sha256 or whose label sets differ from the contract's, so a
half-copied or hand-edited model can never serve predictions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nlp.errors import ModelError

FORMAT = "yuqing-model/1"
MANIFEST = "manifest.json"
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
RUMOR_LABELS = ["not_rumor", "rumor"]


class SentimentHead(BaseModel):
    labels: list[str] = Field(default_factory=lambda: list(SENTIMENT_LABELS))
    # languages whose training data had only two classes; scored by negative vs positive
    two_class_languages: list[str] = Field(default_factory=list)


class RumorHead(BaseModel):
    labels: list[str] = Field(default_factory=lambda: list(RUMOR_LABELS))
    features: list[str] = Field(default_factory=list)
    meaning: str = ""


class TopicHead(BaseModel):
    method: str = "keywords + prototypes (char n-gram TF-IDF and encoder embeddings)"
    pooling: str = "mean"
    # similarity at which the prototype evidence scores 0.5, and the slope of that sigmoid
    # (not calibrated: no labelled topic data exists yet)
    threshold: float = 0.3
    slope: float = 10.0
    # weight of the encoder-embedding similarity beside the char n-gram similarity (weight 1);
    # 0 for an encoder whose embeddings do not separate topics (measured on the stand-in taxonomy)
    encoder_weight: float = Field(default=0.0, ge=0.0)


class Heads(BaseModel):
    sentiment: SentimentHead = Field(default_factory=SentimentHead)
    rumor: RumorHead = Field(default_factory=RumorHead)
    topics: TopicHead = Field(default_factory=TopicHead)


class Manifest(BaseModel):
    """The schema of manifest.json. Unknown keys are kept (forward compatible), known ones checked."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    format: str = FORMAT
    name: str
    version: str
    description: str = ""
    bootstrap: bool = False
    architecture: str = "YuqingMultiTask"
    languages: list[str] = Field(default_factory=list)
    max_length: int = Field(default=128, ge=8, le=4096)
    normalization: str = "nlp.normalize/1"
    heads: Heads = Field(default_factory=Heads)
    training: dict[str, Any] = Field(default_factory=dict)
    licence: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_files(model_dir: Path) -> dict[str, str]:
    """sha256 of every regular file in the directory (recursively) except the manifest itself."""
    out: dict[str, str] = {}
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp"):
            out[p.relative_to(model_dir).as_posix()] = sha256_file(p)
    return out


def write_manifest(model_dir: Path, manifest: Manifest) -> Manifest:
    """Record the checksum of every file now in `model_dir`, then write manifest.json."""
    manifest = manifest.model_copy(update={"files": checksum_files(model_dir)})
    text = json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"
    tmp = model_dir / (MANIFEST + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(model_dir / MANIFEST)
    return manifest


def read_manifest(model_dir: Path) -> Manifest:
    """Parse and schema-check manifest.json; ModelError names the file and the problem."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not model_dir.exists():
        raise ModelError(f"{model_dir}: model directory not found (expected a directory with {MANIFEST}, "
                         "config.json, tokenizer.json and model.safetensors; see models/README.md)")
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: expected a model directory, found a file")
    if not path.exists():
        raise ModelError(f"{path}: missing; every Yuqing model directory carries a {MANIFEST} "
                         "(heads, labels, checksums); see models/README.md")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object at the top level")
    try:
        m = Manifest.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ModelError(f"{path}: {problems}") from None
    if m.format != FORMAT:
        raise ModelError(f"{path}: format {m.format!r} is not supported (expected {FORMAT!r})")
    return m


def verify(model_dir: Path, manifest: Manifest, required: tuple[str, ...] = ()) -> None:
    """Check label sets, that required files are listed, and every listed file's sha256."""
    path = model_dir / MANIFEST
    if manifest.heads.sentiment.labels != SENTIMENT_LABELS:
        raise ModelError(f"{path}: heads.sentiment.labels is {manifest.heads.sentiment.labels}, "
                         f"expected {SENTIMENT_LABELS} (in this order)")
    if manifest.heads.rumor.labels != RUMOR_LABELS:
        raise ModelError(f"{path}: heads.rumor.labels is {manifest.heads.rumor.labels}, expected {RUMOR_LABELS}")
    if not manifest.files:
        raise ModelError(f"{path}: 'files' lists no checksums; re-save the model with nlp.modeldir.save")
    for name in required:
        if name not in manifest.files:
            raise ModelError(f"{path}: 'files' does not list {name}, which this model needs")
    check_files(model_dir, manifest.files, MANIFEST, "was changed after the model was evaluated")


def check_files(model_dir: Path, sums: dict[str, str], listed_in: str, changed: str) -> None:
    """Every file in `sums` (relative path -> sha256) exists and matches: one check for our
    manifests and for a deployer's `sha256sums`, so both fail with the same kind of message."""
    for rel, expected in sums.items():
        f = model_dir / rel
        if not f.is_file():
            raise ModelError(f"{f}: listed in {listed_in} but missing")
        got = sha256_file(f)
        if got != expected:
            raise ModelError(f"{f}: sha256 {got[:16]}… does not match {listed_in} ({expected[:16]}…); "
                             f"the file is corrupted, truncated or {changed}")
