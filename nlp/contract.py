"""`yuqing classify [--model DIR] [--topics FILE] < in.jsonl > out.jsonl` — the stable contract.

Benchmarks and evaluations rely on this exact shape, so it lives in one function the CLI calls:

    nlp.contract.main(argv: list[str] | None = None, stdin=None, stdout=None, stderr=None) -> int

Input line: {"id", "text", optional "lang", optional rumour context "time", "user", "pics",
"has_url", "reposts", "reposts_count"}. Output line, one per input line and in the same order:
{"id", "lang", "sentiment", "sentiment_scores", "topics", "rumor", "model"}. A line that cannot be
read answers {"id" (or "line": n), "error": "..."} and the rest go on. Exit status: 0 when the
model loaded (whatever the lines held), 2 when the model or the topics file cannot be loaded.
Lines are processed in chunks, so output streams and memory stays flat on any input size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from nlp.errors import ModelError

#: Lines classified together (one chunk per classifier stream at a time). Why this many: a chunk is
#: sorted by length into encoder batches, and on the benchmark's posts chunks of 1,024 pad real
#: tokens by 3.6 %, chunks of 256 by 13 %. Output still streams every few seconds.
CHUNK = 1024
_CONTEXT_TYPES: dict[str, tuple[type, ...]] = {
    "time": (int, float, str),
    "user": (dict,),
    "pics": (int, float, bool, list, str),
    "has_url": (bool, int),
    "reposts": (list,),
    "reposts_count": (int, float),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yuqing classify", description="Classify JSONL posts from stdin to stdout.")
    p.add_argument("--model", type=Path, help="model directory (default: the configuration's nlp.model)")
    p.add_argument("--topics", type=Path, help="YAML list of topics {name, description, keywords, examples} "
                                               "(default: the configuration's topics)")
    p.add_argument("--config", type=Path, help="configuration file (default: $YUQING_CONFIG or ./config.yaml)")
    p.add_argument("--override", action="append", default=[], metavar="TASK=DIR",
                   help="a standard sequence-classification model answering TASK (sentiment, rumor or topics) "
                        "instead of the main model's head or topic matcher (default: the configuration's "
                        "nlp.overrides)")
    p.add_argument("--topic-corpus", type=Path, default=None, metavar="DIR",
                   help="unlabelled posts for topic expansion, written by `yuqing topic-corpus` "
                        "(default: the configuration's nlp.topic_corpus)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: the directory's int8 model.onnx on CPU when onnxruntime is installed, else torch")
    return p


def load_topics(path: Path) -> list[Any]:
    """Read a `--topics` YAML file: a list of topics, or a mapping with a `topics` list."""
    import yaml
    from pydantic import ValidationError

    from yuqing.config import TopicConfig

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: invalid YAML ({e})") from None
    if isinstance(data, dict) and "topics" in data:
        data = data["topics"]
    if data is None:  # an empty file: no taxonomy, no topics
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list of topics {{name, description, keywords, examples}}")
    topics = []
    for i, t in enumerate(data):
        try:
            topics.append(TopicConfig.model_validate(t))
        except ValidationError as e:
            err = e.errors()[0]
            raise ValueError(f"{path}: topic [{i}] {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    names = [t.name for t in topics]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: topic names must be unique")
    return topics


def parse_line(raw: str, lineno: int) -> tuple[Any, dict[str, Any] | None]:
    """(ClassifyInput, None) for a good line, or (None, error object) for a bad one."""
    from nlp.classifier import ClassifyInput

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, {"line": lineno, "error": f"invalid JSON: {e.msg} at column {e.colno}"}
    if not isinstance(obj, dict):
        return None, {"line": lineno, "error": f"expected a JSON object, got {type(obj).__name__}"}
    pid = obj.get("id")
    where: dict[str, Any] = {"id": pid} if isinstance(pid, (str, int)) and not isinstance(pid, bool) else {"line": lineno}
    if "id" not in where:
        return None, where | {"error": "missing or invalid 'id' (expected a string or integer)"}
    text = obj.get("text")
    if "text" not in obj:
        return None, where | {"error": "missing 'text'"}
    if text is not None and not isinstance(text, str):
        return None, where | {"error": f"'text' must be a string, got {type(text).__name__}"}
    lang = obj.get("lang")
    if lang is not None and not isinstance(lang, str):
        return None, where | {"error": "'lang' must be a string (ISO 639-1) or absent"}
    ctx: dict[str, Any] = {}
    for key, types in _CONTEXT_TYPES.items():
        v = obj.get(key)
        if v is None:
            continue
        if not isinstance(v, types):
            return None, where | {"error": f"'{key}' has the wrong type ({type(v).__name__})"}
        ctx[key] = v
    return ClassifyInput(id=str(pid), text=text, lang=lang, **ctx), None


def _lines(stdin: IO[Any]):  # type: ignore[no-untyped-def]
    """(line number, text or None if undecodable) for each input line; bytes are decoded here so
    that one line of bad UTF-8 is an error answer, not a crash of the whole run."""
    source = getattr(stdin, "buffer", stdin)
    for n, line in enumerate(source, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, None, f"not UTF-8 (byte {e.start})"
                continue
        yield n, line.rstrip("\r\n"), None


def main(argv: list[str] | None = None, stdin: IO[Any] | None = None, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Run the contract; returns the exit status."""
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    args = _parser().parse_args(argv)

    settings = None
    if args.model is None or args.topics is None or args.config is not None:
        try:
            from yuqing.config import ConfigError, load_settings

            settings = load_settings(args.config)
        except ConfigError as e:
            print(f"yuqing classify: {e}", file=stderr)
            return 2
    model_dir = args.model if args.model is not None else settings.model_path  # type: ignore[union-attr]
    try:
        topics = load_topics(args.topics) if args.topics is not None else list(settings.topics)  # type: ignore[union-attr]
    except ValueError as e:
        print(f"yuqing classify: {e}", file=stderr)
        return 2
    from nlp.single_task import parse_override_arg, specs_from_settings

    try:
        overrides = {o.task: o for o in (specs_from_settings(settings) if settings is not None else [])}
        for value in args.override:
            o = parse_override_arg(value)
            overrides[o.task] = o
    except ValueError as e:
        print(f"yuqing classify: {e}", file=stderr)
        return 2
    nlp_cfg = settings.nlp if settings is not None else None
    batch = args.batch_size or (nlp_cfg.batch_size if nlp_cfg else 32)
    threads = args.threads or (nlp_cfg.threads if nlp_cfg else None)
    device = args.device or (nlp_cfg.device if nlp_cfg else "auto")
    corpus = args.topic_corpus or (settings.topic_corpus_path if settings is not None else None)  # type: ignore[union-attr]

    from nlp.classifier import Classifier

    try:
        clf = Classifier.load(model_dir, topics=topics, device=device, threads=threads, batch_size=batch,
                              backend=args.backend, overrides=list(overrides.values()), topic_corpus=corpus)
    except ModelError as e:
        print(f"yuqing classify: cannot load model: {e}", file=stderr)
        return 2

    from tqdm import tqdm

    bar = tqdm(file=stderr, unit=" posts", delay=2.0, mininterval=1.0, desc="classify")
    Pending = list[tuple[Any, dict[str, Any] | None]]  # (ClassifyInput or None, error answer or None)

    def chunks():  # type: ignore[no-untyped-def]
        pending: Pending = []
        for n, line, decode_error in _lines(stdin):
            if decode_error is not None:
                pending.append((None, {"line": n, "error": decode_error}))
            elif not line.strip():
                pending.append((None, {"line": n, "error": "empty line"}))
            else:
                pending.append(parse_line(line, n))
            if len(pending) >= CHUNK:
                yield pending, [it for it, err in pending if err is None]
                pending = []
        if pending:
            yield pending, [it for it, err in pending if err is None]

    try:
        for pending, results in clf.predict_batches(chunks()):
            answers = iter(results)
            for it, err in pending:
                if err is not None:
                    out = err
                else:
                    p = next(answers)
                    if isinstance(p, str):
                        out = {"id": it.id, "error": p}
                    else:
                        c = p.classification
                        out = {"id": p.id, "lang": p.lang, "sentiment": c.sentiment,
                               "sentiment_scores": c.sentiment_scores, "topics": [t.model_dump() for t in c.topics],
                               "rumor": c.rumor, "model": c.model}
                stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            stdout.flush()
            bar.update(len(pending))
    finally:
        bar.close()
    return 0


if __name__ == "__main__":  # python -m nlp.contract
    raise SystemExit(main())
