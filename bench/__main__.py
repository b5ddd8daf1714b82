"""`python -m bench`: run every benchmark module in turn (each prints its own figures)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench
from bench.machine import describe


def main() -> int:
    print(f"machine: {describe()}", flush=True)
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in {"machine", "__main__"}]
    rc = 0
    for name in sorted(names):
        mod = importlib.import_module(f"bench.{name}")
        if hasattr(mod, "main"):
            print(f"\n== bench.{name}", flush=True)
            rc |= int(mod.main([]) or 0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
