"""``lightgcn``: LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network
for Recommendation", SIGIR 2020), the ID-only graph baseline of the multimodal backbones.

Users and items have free ID embeddings ``E⁰``; each layer multiplies by the symmetric normalised
user–item graph (``neural.normalized_adjacency``), ``Eᵏ⁺¹ = Â Eᵏ``, with no weights and no
non-linearity, and the final embedding is the mean of layers ``0..K``. Trained with BPR and an L2
penalty ``reg`` on the batch's layer-0 embeddings (``neural.BPRTechnique`` does the training,
early stopping and grid). Hyperparameters: ``layers`` (K) and ``reg`` are searched on validation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from core.recommenders import register
from core.recommenders.neural import (
    BPRTechnique,
    bpr_loss,
    l2_reg,
    normalized_adjacency,
    spmm,
    torch_sparse,
)


def propagate(torch, adj, ego, layers: int):
    """Mean of ``[ego, adj @ ego, adj² @ ego, …]`` over ``layers`` propagations (LightGCN)."""
    out = [ego]
    for _ in range(int(layers)):
        ego = spmm(adj, ego)
        out.append(ego)
    return torch.stack(out, dim=0).mean(dim=0)


@functools.cache
def _net_class():
    import torch

    class LightGCNNet(torch.nn.Module):
        def __init__(self, n_users: int, n_items: int, dim: int, layers: int, reg: float, adj):
            super().__init__()
            self.n_users, self.layers, self.reg, self.adj = n_users, layers, reg, adj
            self.user = torch.nn.Embedding(n_users, dim)
            self.item = torch.nn.Embedding(n_items, dim)
            torch.nn.init.xavier_uniform_(self.user.weight)
            torch.nn.init.xavier_uniform_(self.item.weight)

        def embeddings(self):
            ego = torch.cat([self.user.weight, self.item.weight])
            out = propagate(torch, self.adj, ego, self.layers)
            return out[:self.n_users], out[self.n_users:]

        def loss(self, u, i, j):
            users, items = self.embeddings()
            return (bpr_loss(torch, users[u], items[i], items[j])
                    + self.reg * l2_reg(self.user(u), self.item(i), self.item(j)))

    return LightGCNNet


@register
class LightGCNRecommender(BPRTechnique):
    """LightGCN: ID embeddings averaged over propagation layers of the user–item graph (BPR)."""

    name = "lightgcn"
    label = "LightGCN"
    defaults = {"layers": 2, "reg": 1e-4}
    grid = {"layers": [1, 2, 3], "reg": [1e-4, 1e-3]}

    def build(self, torch, ctx, params: dict[str, Any], features: dict[str, np.ndarray],
              device: str):
        adj = torch_sparse(torch, normalized_adjacency(ctx.train_csr), device)
        n_users, n_items = ctx.train_csr.shape
        return _net_class()(n_users, n_items, int(params["dim"]), int(params["layers"]),
                            float(params["reg"]), adj).to(device)
