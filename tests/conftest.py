"""Suite-wide settings: offline model hubs and a private cache directory per test session.

Encoders run in fp32 unless the caller's environment says otherwise: ``MMREC_BF16=1 make test``
runs every torch encoder of the suite in bf16."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MMREC_BF16", "0")
