"""The hybrid heads of the default model: encoder probabilities blended with n-gram linear models.

Why a hybrid: on the shared data a character n-gram logistic regression is a strong reference
(issue 8) and the small CPU encoder alone does not beat it; the two make different errors, so a
blend fitted on a tuning split carved from the training files beats both. Everything here is
plain numbers: the n-gram models are `nlp.ngram.NgramModel` files and the blend is `blend.json`
(stacker coefficients), all listed with their sha256 in the manifest. No pickle.

Sentiment, per language that has an n-gram model (zh, en, ar; other languages use the encoder
alone):
- three-class languages: a multinomial logistic stacker over [log p_encoder (3), log-softmax of the
  n-gram logits (3)] gives the three probabilities directly (fitted on the tuning split, so it is
  also the calibration);
- two-class languages (the Chinese reviews have no neutral class): the stacker only decides
  negative vs positive, from the encoder's log(p_pos/p_neg) and the n-gram's binary logit; the
  neutral share stays the encoder's own (whose neutral class was learned from the tweets only), so
  the reviews neither push nor starve it: p = (p_neu, (1-p_neu)(1-q), (1-p_neu) q).

Rumour: a logistic stacker over the encoder's rumour logit, the n-gram logit of the post's text,
the n-gram logit of the reposts' texts seen so far (0 with an indicator when there are none: the
publish-time operating point) and the `nlp.rumor_features` context vector, fitted on the tuning
split at both operating points (publish time and first hour). Logistic stacking is Platt scaling
of the combined score, so the output is a calibrated probability on CED's base rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp.errors import ModelError
from nlp.ngram import NgramModel
from nlp.normalize import normalize
from nlp.rumor_features import FEATURES

BLEND = "blend.json"
FORMAT = "yuqing-blend/1"
REPOST_SEP = " ｜ "
MAX_REPOST_CHARS = 4000
_EPS = 1e-6


def repost_text(reposts: Any) -> str:
    """The reposts' texts seen so far, normalised and joined ('' when none were given)."""
    if not isinstance(reposts, list):
        return ""
    texts = [normalize(str(r.get("text") or ""), 300) for r in reposts if isinstance(r, dict)]
    return REPOST_SEP.join(t for t in texts if t)[:MAX_REPOST_CHARS]


def sentiment_inputs(p_enc: np.ndarray, z_ngram: np.ndarray, two_class: bool) -> np.ndarray:
    """Stacker inputs for one language (rows = posts)."""
    lp = np.log(np.clip(p_enc, _EPS, 1.0))
    if two_class:
        return np.stack([lp[:, 2] - lp[:, 0], z_ngram], axis=1)
    zl = z_ngram - z_ngram.max(axis=1, keepdims=True)
    ls = zl - np.log(np.exp(zl).sum(axis=1, keepdims=True))
    return np.concatenate([lp, ls], axis=1)


def rumor_inputs(enc_p: np.ndarray, z_text: np.ndarray, z_rep: np.ndarray, has_rep: np.ndarray,
                 feats: np.ndarray) -> np.ndarray:
    p = np.clip(enc_p, _EPS, 1 - _EPS)
    return np.concatenate([np.stack([np.log(p / (1 - p)), z_text, z_rep * has_rep, has_rep], axis=1), feats], axis=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class Linear:
    coef: np.ndarray  # (k, d)
    intercept: np.ndarray  # (k,)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef.T + self.intercept

    @classmethod
    def from_json(cls, d: dict[str, Any], k: int, dim: int, where: str) -> "Linear":
        try:
            c = np.asarray(d["coef"], dtype=np.float64)
            b = np.asarray(d["intercept"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{where}: malformed stacker ({e})") from None
        if c.shape != (k, dim) or b.shape != (k,) or not (np.isfinite(c).all() and np.isfinite(b).all()):
            raise ModelError(f"{where}: stacker shape {c.shape} / {b.shape}, expected ({k}, {dim}) / ({k},)")
        return cls(c, b)

    def to_json(self) -> dict[str, Any]:
        return {"coef": np.round(self.coef, 6).tolist(), "intercept": np.round(self.intercept, 6).tolist()}


class Hybrid:
    """Loaded n-gram models + stackers; `sentiment` and `rumor` blend the encoder's outputs."""

    def __init__(self, path: Path, cfg: dict[str, Any], listed: set[str] | None = None) -> None:
        where = str(path / BLEND)
        self.path = path
        if listed is not None:  # every n-gram file must be covered by the manifest's checksums
            names = [s["ngram"] for s in (cfg.get("sentiment") or {}).values()]
            names += [(cfg.get("rumor") or {}).get(k) for k in ("text_ngram", "repost_ngram")]
            for n in names:
                for suffix in (".json", ".safetensors"):
                    if not isinstance(n, str) or f"{n}{suffix}" not in listed:
                        raise ModelError(f"{path / 'manifest.json'}: 'files' does not list {n}{suffix}, which "
                                         f"{BLEND} needs (unverified n-gram files are never loaded)")
        self.two_class = set(cfg.get("two_class_languages", []))
        self.sent_models: dict[str, NgramModel] = {}
        self.sent_stack: dict[str, Linear] = {}
        for lang, spec in (cfg.get("sentiment") or {}).items():
            m = NgramModel.load(path, spec["ngram"])
            two = lang in self.two_class
            if m.classes != (["negative", "positive"] if two else ["negative", "neutral", "positive"]):
                raise ModelError(f"{path / (spec['ngram'] + '.json')}: classes {m.classes} do not fit language {lang}")
            self.sent_models[lang] = m
            self.sent_stack[lang] = Linear.from_json(spec["stacker"], 1 if two else 3, 2 if two else 6, where)
        r = cfg.get("rumor") or {}
        if r.get("features") != FEATURES:
            raise ModelError(f"{where}: rumour features {r.get('features')} differ from this code's {FEATURES}")
        self.rumor_text = NgramModel.load(path, r["text_ngram"])
        self.rumor_reposts = NgramModel.load(path, r["repost_ngram"])
        self.rumor_stack = Linear.from_json(r["stacker"], 1, 4 + len(FEATURES), where)

    @classmethod
    def load(cls, path: Path, listed: set[str] | None = None) -> "Hybrid":
        """Load `blend.json` and its n-gram models. `listed`: the manifest's file list (already
        verified); a file the blend needs that is not listed is refused before it is read."""
        f = Path(path) / BLEND
        if listed is not None and BLEND not in listed:
            raise ModelError(f"{Path(path) / 'manifest.json'}: 'files' does not list {BLEND}")
        try:
            cfg = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{f}: cannot read ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise ModelError(f"{f}: expected format {FORMAT!r}")
        try:
            return cls(Path(path), cfg, listed)
        except KeyError as e:
            raise ModelError(f"{f}: missing key {e}") from None

    def files(self) -> list[str]:
        names = [BLEND]
        for m in [*self.sent_models.values(), self.rumor_text, self.rumor_reposts]:
            names += [f"{m.name}.json", f"{m.name}.safetensors"]
        return names

    def sentiment(self, texts: Sequence[str], langs: Sequence[str | None], p_enc: np.ndarray) -> np.ndarray:
        """Blended (n, 3) probabilities; rows whose language has no n-gram model keep the encoder's."""
        out = np.array(p_enc, dtype=np.float64, copy=True)
        for lang, model in self.sent_models.items():
            idx = [i for i, lg in enumerate(langs) if lg == lang and texts[i]]
            if not idx:
                continue
            z = model.decision([texts[i] for i in idx])
            two = lang in self.two_class
            X = sentiment_inputs(out[idx], z, two)
            s = self.sent_stack[lang](X)
            if two:
                q = _sigmoid(s[:, 0])
                neu = out[idx, 1]
                out[idx] = np.stack([(1 - neu) * (1 - q), neu, (1 - neu) * q], axis=1)
            else:
                out[idx] = _softmax(s)
        return out

    def rumor(self, texts: Sequence[str], reposts: Sequence[Any], enc_p: np.ndarray, feats: np.ndarray) -> np.ndarray:
        z_text = self.rumor_text.decision(list(texts))
        rep = [repost_text(r) for r in reposts]
        has = np.array([1.0 if t else 0.0 for t in rep])
        z_rep = np.zeros(len(rep))
        sel = [i for i, t in enumerate(rep) if t]
        if sel:
            z_rep[sel] = self.rumor_reposts.decision([rep[i] for i in sel])
        X = rumor_inputs(np.asarray(enc_p, dtype=np.float64), z_text, z_rep, has, np.asarray(feats, dtype=np.float64))
        return _sigmoid(self.rumor_stack(X)[:, 0])


def finite01(x: float, default: float) -> float:
    return default if not math.isfinite(x) else min(max(x, 0.0), 1.0)
