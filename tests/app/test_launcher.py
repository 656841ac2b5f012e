"""``python -m app_pages``: what ``make app`` runs. It imports the pages' modules before the server
starts (never torch), then hands the command line to ``streamlit run app.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_warm_modules_import_no_model_library_and_log_nothing():
    """In a fresh process, as ``make app`` runs it (the server itself replaced by a stub)."""
    code = ("import json, sys\n"
            "import streamlit.web.cli as cli\n"
            "cli.main = lambda **kw: 0\n"
            "import app_pages.__main__ as launcher\n"
            "assert launcher.main([]) == 0\n"
            "heavy = ('torch', 'open_clip', 'torchvision', 'timm', 'transformers',\n"
            "         'sentence_transformers', 'umap', 'implicit')\n"
            "print(json.dumps([sorted(m for m in heavy if m in sys.modules),\n"
            "                  all(m in sys.modules for m in launcher.WARM_MODULES)]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], True]
    assert "WARNING" not in done.stderr, done.stderr  # e.g. st.cache_data's "No runtime found"


def test_main_runs_streamlit_on_app_py(monkeypatch):
    from streamlit.web import cli

    import app_pages.__main__ as launcher

    seen = {}
    monkeypatch.setattr(cli, "main", lambda **kw: seen.update(argv=list(sys.argv), **kw) or 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert launcher.main(["--server.port", "8765"]) == 0
    assert seen["argv"] == ["streamlit", "run", str(ROOT / "app.py"), "--server.port", "8765"]
    assert all(m in sys.modules for m in launcher.WARM_MODULES)
