"""``python -m bench``: run every ``bench/*.py`` module's ``main()`` in turn."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    status = 0
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])):
        if mod.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{mod}")
        if not hasattr(module, "main"):
            continue
        print(f"== bench.{mod} ==", flush=True)
        try:
            takes_argv = bool(inspect.signature(module.main).parameters)
            status |= int((module.main([]) if takes_argv else module.main()) or 0)
        except Exception as exc:  # one failing benchmark does not hide the others
            print(f"bench.{mod} failed: {exc!r}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
