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
    "pandas", "duckdb", "plotly.express", "plotly.graph_objects", "app_pages._ui",
    "app_pages._item_ui",
    "core.lab", "core.lab.search", "core.projection", "core.evaluation.metrics",
    "streamlit.material_icon_names",
)


def main(argv: list[str] | None = None) -> int:
    import importlib
    import logging

    # st.cache_data checks its options when a page module defines a cached function and, with no
    # runtime yet, logs that it falls back to memory storage; the storage itself is taken from
    # the runtime on the first call, so that warning does not apply here
    import streamlit.runtime.caching.cache_data_api  # noqa: F401 - its logger, configured

    quiet = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for name in WARM_MODULES:
            importlib.import_module(name)
    finally:
        quiet.setLevel(level)
    from streamlit.web import cli

    app = Path(__file__).resolve().parents[1] / "app.py"
    sys.argv = ["streamlit", "run", str(app), *(sys.argv[1:] if argv is None else argv)]
    return cli.main(prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
