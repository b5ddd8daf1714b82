"""deploy/ cannot run here (no Docker engine), so this keeps it honest by reading it: every role
a container starts is a real `yuqing` command, every YUQING_* variable it sets is a real setting,
and every path the Dockerfile copies exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from yuqing.cli import build_parser
from yuqing.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001 - argparse has no public API for this
    return set(sub.choices)


def _setting_exists(var: str) -> bool:
    path = var.removeprefix("YUQING_").lower().split("__")
    model: type = Settings
    for i, part in enumerate(path):
        fields = model.model_fields  # type: ignore[attr-defined]
        if part not in fields:
            return False
        ann = fields[part].annotation
        if i < len(path) - 1:
            ann = next((a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")), ann)
            if not hasattr(ann, "model_fields"):
                return False
            model = ann
    return True


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def test_compose_roles_are_real_commands() -> None:
    services = _compose()["services"]
    roles = {name: svc["command"][0] for name, svc in services.items() if "command" in svc}
    assert {"api", "worker", "crawler", "scheduler"} <= set(roles.values())
    assert set(roles.values()) <= _commands(), roles
    assert {"postgres", "elasticsearch"} <= set(services)


def test_compose_environment_variables_are_real_settings() -> None:
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    names = set(re.findall(r"\b(YUQING_[A-Z0-9_]+)\s*:", text))
    assert "YUQING_STATE__URL" in names and "YUQING_INDEX__BACKEND" in names
    bad = [n for n in names if n != "YUQING_CONFIG" and not _setting_exists(n)]
    assert not bad, f"compose sets variables no setting reads: {bad}"


def test_dockerfile_copies_what_exists_and_runs_a_real_role() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(\S+)\s+\S+", text, flags=re.M):
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    for var in re.findall(r"\b(YUQING_[A-Z0-9_]+)=", text):
        assert var == "YUQING_CONFIG" or _setting_exists(var), var
    assert 'ENTRYPOINT ["yuqing"]' in text
    cmd = re.search(r'^CMD \["(\w+)"\]', text, flags=re.M)
    assert cmd and cmd.group(1) in _commands()
    # torch is installed before the package so the install never pulls another torch build
    assert text.index("TORCH_SPEC}") < text.index("pip install --no-cache-dir .")


@pytest.mark.parametrize("var", ["YUQING_NOPE", "YUQING_INDEX__NOPE", "YUQING_INDEX__BACKEND__X"])
def test_the_check_itself_rejects_unknown_variables(var: str) -> None:
    assert not _setting_exists(var)
