"""``fusion``: attention fusion of an item's ID and content vectors, trained with BPR (the recipe
of the PixelRec study: multi-head self-attention over the modalities, then an MLP).

Each item is a short sequence of tokens: its ID embedding and, per modality, a learned linear
projection of its text / image features (``neural``), each plus a learned modality embedding.
One multi-head self-attention layer (``heads`` heads, residual, layer norm) mixes the tokens; their
mean goes through a two-layer MLP (residual) to give the item vector. A user is an ID embedding
plus, with ``history`` on, the mean of the item vectors of the user's train items. Trained with
BPR plus ``reg`` × the L2 norm of the batch's ID embeddings. ``reg`` is searched on validation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.recommenders import register
from core.recommenders.neural import BPRTechnique, bpr_loss, l2_reg, spmm, torch_sparse


@functools.cache
def _net_class():
    import torch

    nn = torch.nn

    class FusionNet(nn.Module):
        def __init__(self, n_users: int, n_items: int, params: dict[str, Any], feats: dict,
                     history, device: str):
            super().__init__()
            dim = int(params["dim"])
            self.reg = float(params["reg"])
            self.user = nn.Embedding(n_users, dim)
            self.item = nn.Embedding(n_items, dim)
            nn.init.xavier_uniform_(self.user.weight)
            nn.init.xavier_uniform_(self.item.weight)
            self.names = sorted(feats)
            self.feats = {m: torch.from_numpy(feats[m]).to(device) for m in self.names}
            self.proj = nn.ModuleDict({m: nn.Linear(feats[m].shape[1], dim) for m in self.names})
            self.kind = nn.Parameter(torch.zeros(1 + len(self.names), dim))
            self.attn = nn.MultiheadAttention(dim, int(params["heads"]), batch_first=True)
            self.norm = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.ReLU(),
                                     nn.Linear(2 * dim, dim))
            self.history = history  # row-normalised train CSR (torch sparse) or None

        def items(self):
            tokens = [self.item.weight] + [self.proj[m](self.feats[m]) for m in self.names]
            x = torch.stack(tokens, dim=1) + self.kind[None]
            mixed, _ = self.attn(x, x, x, need_weights=False)
            pooled = self.norm(x + mixed).mean(dim=1)
            return pooled + self.mlp(pooled)

        def embeddings(self):
            items = self.items()
            users = self.user.weight
            if self.history is not None:
                users = users + spmm(self.history, items)
            return users, items

        def loss(self, u, i, j):
            users, items = self.embeddings()
            return (bpr_loss(torch, users[u], items[i], items[j])
                    + self.reg * l2_reg(self.user(u), self.item(i), self.item(j)))

    return FusionNet


@register
class FusionRecommender(BPRTechnique):
    """Attention fusion: self-attention over an item's ID, text and photo vectors, then an MLP;
    users from ID + history (BPR)."""

    name = "fusion"
    label = "Attention fusion"
    modalities = ("text", "image")
    defaults = {"heads": 2, "history": True, "reg": 1e-3}
    grid = {"reg": [1e-3, 1e-2]}

    def build(self, torch, ctx, params: dict[str, Any], features: dict[str, np.ndarray],
              device: str):
        n_users, n_items = ctx.train_csr.shape
        history = None
        if params.get("history", True):
            csr = (ctx.train_csr > 0).astype(np.float32)
            deg = np.asarray(csr.sum(axis=1)).ravel()
            inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1.0), 0.0).astype(np.float32)
            history = torch_sparse(torch, sp.diags(inv) @ csr, device)
        return _net_class()(n_users, n_items, params, features, history, device).to(device)
