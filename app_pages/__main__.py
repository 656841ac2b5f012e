"""``python -m app_pages [STREAMLIT OPTIONS]``: the app's server, as ``make app`` starts it.

The same as ``streamlit run app.py [OPTIONS]``, except that the modules the pages import (pandas,
plotly, the engine's torch-free API) are imported before the server listens, not during the first
visitor's page: on a 2-core machine that is about 2 s the first page no longer waits for. torch is
not among them (models load when a page needs one).
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Imported before the server starts (what the pages import; never torch).
WARM_MODULES = (
    "pandas", "plotly.express", "plotly.graph_objects", "app_pages._ui", "app_pages._item_ui",
    "core.lab", "core.lab.search", "core.projection", "core.evaluation.metrics",
    "streamlit.material_icon_names",
)


def main(argv: list[str] | None = None) -> int:
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    from streamlit.web import cli

    app = Path(__file__).resolve().parents[1] / "app.py"
    sys.argv = ["streamlit", "run", str(app), *(sys.argv[1:] if argv is None else argv)]
    return cli.main(prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
