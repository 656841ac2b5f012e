"""The layers stay layered: techniques never import the evaluation layer (they tune through
``FitContext.validator``), and the ranking primitives below both import neither. Checked on the
source (every import statement, including lazy ones inside functions, and ``import_module`` calls),
so adding an import back fails here even if no test happens to run that code path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"


def imported_modules(path: Path, root: Path = CORE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``: ``import a.b``, ``from a.b import c`` (as
    ``a.b`` and ``a.b.c``, relative ones resolved), ``importlib.import_module("a.b")`` and
    ``__import__("a.b")`` with a literal name; ``root`` is the ``core`` folder."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def offending(paths: list[Path], forbidden: tuple[str, ...], root: Path = CORE) -> list[str]:
    """``file:line: module`` for every import of a ``forbidden`` package (or a module in it)."""
    return [f"{p.relative_to(root.parent)}:{line}: {module}"
            for p in paths for line, module in imported_modules(p, root)
            if any(module == f or module.startswith(f + ".") for f in forbidden)]


def test_the_scanner_sees_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "core" / "recommenders"
    pkg.mkdir(parents=True)
    src = pkg / "bad.py"
    src.write_text(
        "import importlib\n"
        "def f():\n"
        "    from core.evaluation.metrics import evaluate_topk\n"
        "    from ..evaluation import evaluator\n"
        "    import core.evaluation.splits\n"
        "    importlib.import_module('core.evaluation.bootstrap')\n"
        "from core import evaluation\n"
        "from core.evaluation_extra import x\n")
    found = offending([src], ("core.evaluation",), root=tmp_path / "core")
    assert sorted(found) == sorted([
        "core/recommenders/bad.py:3: core.evaluation.metrics",
        "core/recommenders/bad.py:3: core.evaluation.metrics.evaluate_topk",
        "core/recommenders/bad.py:4: core.evaluation",
        "core/recommenders/bad.py:4: core.evaluation.evaluator",
        "core/recommenders/bad.py:5: core.evaluation.splits",
        "core/recommenders/bad.py:6: core.evaluation.bootstrap",
        "core/recommenders/bad.py:7: core.evaluation",
    ])  # not core.evaluation_extra: a prefix of the name is not the package


def test_recommenders_never_import_evaluation():
    paths = sorted((CORE / "recommenders").rglob("*.py"))
    assert paths, "no source under core/recommenders"
    assert offending(paths, ("core.evaluation",)) == []


def test_ranking_primitives_import_neither_layer_above():
    assert offending([CORE / "ranking.py"], ("core.evaluation", "core.recommenders")) == []


@pytest.mark.parametrize("code", [
    "import core, core.ranking, core.recommenders, core.recommenders.base",
    "import numpy as np; from core.ranking import top_k; top_k(np.ones((3, 50), np.float32), 5)",
])
def test_the_engine_core_stays_torch_free(code):
    probe = f"{code}; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=CORE.parent, check=True)
    assert out.stdout.strip() == "False", out.stderr
