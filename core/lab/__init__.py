"""The lab's engine-side API for the app: one call per page action, returning plain frames and
small dataclasses the pages only display.

One module per job:

* ``data``     ``load`` a dataset into ``LabData`` (with covers and categories), ``describe`` it,
               ``split_of``, the ``fit_context`` / embedding ``provider`` the others build on.
* ``choices``  encoder specs per role, techniques with availability, split kinds (the pickers),
               ``technique_colours`` (one colour per technique on every page and chart).
* ``runs``     ``run_comparison`` -> ``Comparison`` (stored runs from the ``RunStore``; missing ones
               computed once however many sessions ask, as the CLI does), the metric table,
               metric-vs-k rows and paired bootstrap CIs of the Compare page, and
               ``estimate_runs`` (how long computing the missing runs should take).
* ``inspect``  one user: worst users, where A beats B, ``user_view`` with "because you liked …".
* ``search``   free-text search over photos or item texts.
* ``maps``     the embedding map (cached UMAP) with a user's overlay; ``selected_rows`` of a
               chart selection.
* ``items``    ``item_view``: one item's photos, text, reviews, consumers, neighbours in the map's
               space and the stored techniques that recommend it.

Torch-free at import (every heavy module is imported inside the function that needs it), and free of
Streamlit: the pages decide what to cache. Heavy results live in DuckDB (``core.store.runs`` for
evaluation runs, ``core.projection`` for maps, ``core.store`` for embeddings), so a page rerun
reloads them instead of recomputing. Raw ids cross this boundary (``user_id``, ``item_id``
strings); indices stay inside the engine.
"""

from __future__ import annotations

from core.lab.choices import (
    DEFAULT_ENCODERS,
    ROLE_LABELS,
    ROLES,
    encoder_choices,
    encoder_role,
    features_here,
    split_kinds,
    technique_choices,
    technique_colours,
)
from core.lab.data import LabData, describe, fit_context, load, provider, split_of
from core.lab.inspect import (
    SCORE_NOTE,
    UserView,
    beats,
    closest_history,
    content_model,
    default_side_by_side,
    is_content,
    user_ids,
    user_metric,
    user_view,
    worst_users,
)
from core.lab.items import ItemView, item_view
from core.lab.maps import EmbeddingMap, embedding_map, map_choices, selected_rows
from core.lab.runs import (
    KS,
    Comparison,
    RunEstimate,
    estimate_runs,
    metric_column,
    metric_long,
    metric_table,
    paired_ci,
    paired_cis,
    run_comparison,
    run_keys,
    stored_techniques,
)
from core.lab.search import SEARCH_MODES, search
from core.progress import Progress

__all__ = [
    "DEFAULT_ENCODERS", "KS", "ROLES", "ROLE_LABELS", "SEARCH_MODES", "Comparison", "EmbeddingMap",
    "LabData", "Progress", "UserView", "beats", "closest_history", "content_model",
    "default_side_by_side", "describe", "embedding_map", "encoder_choices", "encoder_role",
    "fit_context", "is_content", "load", "map_choices", "metric_long", "metric_table",
    "paired_ci", "paired_cis", "provider", "run_comparison", "run_keys", "search", "split_kinds",
    "split_of",
    "stored_techniques", "technique_choices", "user_ids", "user_metric", "user_view",
    "worst_users",
    "SCORE_NOTE", "RunEstimate", "estimate_runs", "metric_column", "technique_colours",
    "ItemView", "item_view", "selected_rows", "features_here",
]
