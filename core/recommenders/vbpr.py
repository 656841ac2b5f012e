"""``vbpr``: VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016), as multimodal benchmarks run it (MMRec's version).

An item is its ID embedding ``γ_i`` joined with a learned linear projection ``E f_i + b`` of its
content features ``f_i`` (the text and image item features of ``neural``, concatenated; the
paper's visual features generalised to any encoder and to text). A user is one embedding
``[γ_u, θ_u]`` of twice the size, and ``score(u, i) = γ_u·γ_i + θ_u·(E f_i + b)``. Trained with BPR
plus ``reg`` × the L2 norm of the batch's user and item vectors. The paper's bias terms are left
out (as in MMRec's version). ``reg`` is searched on validation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from core.recommenders import register
from core.recommenders.neural import BPRTechnique, bpr_loss, l2_reg


@functools.cache
def _net_class():
    import torch

    class VBPRNet(torch.nn.Module):
        def __init__(self, n_users: int, n_items: int, dim: int, reg: float, feats):
            super().__init__()
            self.reg = reg
            self.feats = feats
            self.user = torch.nn.Parameter(torch.empty(n_users, 2 * dim))
            self.item = torch.nn.Parameter(torch.empty(n_items, dim))
            torch.nn.init.xavier_uniform_(self.user)
            torch.nn.init.xavier_uniform_(self.item)
            self.proj = torch.nn.Linear(feats.shape[1], dim)

        def embeddings(self):
            return self.user, torch.cat([self.item, self.proj(self.feats)], dim=1)

        def loss(self, u, i, j):
            users, items = self.embeddings()
            eu, ei, ej = users[u], items[i], items[j]
            return bpr_loss(torch, eu, ei, ej) + self.reg * l2_reg(eu, ei, ej)

    return VBPRNet


@register
class VBPRRecommender(BPRTechnique):
    """VBPR: BPR with ID factors plus a learned projection of item text and photo features."""

    name = "vbpr"
    label = "VBPR"
    modalities = ("text", "image")
    defaults = {"reg": 1e-2}
    grid = {"reg": [1e-3, 1e-2]}

    def build(self, torch, ctx, params: dict[str, Any], features: dict[str, np.ndarray],
              device: str):
        feats = np.concatenate([features[m] for m in sorted(features)], axis=1)
        n_users, n_items = ctx.train_csr.shape
        return _net_class()(n_users, n_items, int(params["dim"]), float(params["reg"]),
                            torch.from_numpy(feats).to(device)).to(device)
