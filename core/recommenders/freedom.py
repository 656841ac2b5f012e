"""``freedom``: a FREEDOM-style graph (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising
Graph Structures for Multimodal Recommendation", ACM MM 2023).

* **Frozen item–item graph.** For each modality (``text``, ``image`` item features, see
  ``neural``), items are linked to their ``knn_k`` most cosine-similar items (the item itself
  included, as its own nearest neighbour; an item without features keeps only that self-link),
  and the binary kNN matrix ``S`` is normalised ``D^-1/2 S D^-1/2`` with ``D`` its row degrees.
  The modalities' graphs are fused, ``image_weight · S_image + (1 - image_weight) · S_text``, once
  before training, and never learned.
* **Denoised user–item graph.** At each epoch only ``1 - dropout`` of the train edges are kept,
  drawn without replacement with probability proportional to ``1 / sqrt(d_u · d_i)`` (edges between
  high-degree nodes are pruned more: degree-sensitive pruning), and the kept graph is normalised
  again. Scoring uses the whole graph.
* **Embeddings.** Item ID embeddings pass ``mm_layers`` times through the item–item graph (``h``);
  users and items pass ``ui_layers`` LightGCN layers through the (pruned) user–item graph; an
  item's final embedding is its LightGCN embedding plus ``h``.
* **Loss.** BPR on those embeddings, plus ``reg_weight`` × a BPR loss of the user embeddings
  against each modality's features through a learned linear projection (the features stay frozen
  here, as the encoders' towers do).

Hyperparameters as the paper's code: ``knn_k`` 10, ``image_weight`` 0.1, ``mm_layers`` 1,
``ui_layers`` 2; ``dropout`` ∈ {0.8, 0.9} and ``reg_weight`` ∈ {0, 1e-3} are searched on
validation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.recommenders import register
from core.recommenders.lightgcn import propagate
from core.recommenders.neural import BPRTechnique, bpr_loss, spmm, torch_sparse


def knn_graph(features: np.ndarray, k: int) -> sp.csr_matrix:
    """The normalised kNN item–item graph of ``features`` (rows: items): ``S[i, j] = 1`` for the
    ``k`` items ``j`` most cosine-similar to ``i`` (``i`` itself first), then ``D^-1/2 S D^-1/2``
    with ``D`` the row degrees. Items whose feature row is zero link only to themselves."""
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    norms = np.linalg.norm(x, axis=1)
    has = norms > 0
    x = x / np.where(has, norms, 1.0)[:, None]
    k = max(1, min(int(k), n))
    rows, cols = [], []
    for start in range(0, n, 2048):  # blocks bound the memory of the similarity matrix
        sim = x[start:start + 2048] @ x.T
        block = np.arange(start, min(n, start + 2048))
        sim[np.arange(len(block)), block] = np.inf  # each item is its own first neighbour
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for r, i in enumerate(block):
            nbrs = top[r] if has[i] else np.array([i])
            rows.append(np.full(len(nbrs), i))
            cols.append(nbrs)
    r_idx = np.concatenate(rows)
    c_idx = np.concatenate(cols)
    s = sp.csr_matrix((np.ones(len(r_idx), np.float32), (r_idx, c_idx)), shape=(n, n))
    deg = np.asarray(s.sum(axis=1)).ravel()
    inv = deg ** -0.5
    return (sp.diags(inv.astype(np.float32)) @ s @ sp.diags(inv.astype(np.float32))).tocsr()


def fused_item_graph(features: dict[str, np.ndarray], k: int, image_weight: float) -> sp.csr_matrix:
    """The modalities' kNN graphs fused with ``image_weight`` (one modality: its graph)."""
    graphs = {m: knn_graph(f, k) for m, f in features.items()}
    if len(graphs) == 1:
        return next(iter(graphs.values()))
    return (image_weight * graphs["image"] + (1.0 - image_weight) * graphs["text"]).tocsr()


def pruned_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                     keep: int, rng: np.random.Generator) -> sp.csr_matrix:
    """FREEDOM's degree-sensitive edge pruning: ``keep`` of the edges ``(users[e], items[e])``
    drawn without replacement with probability ∝ ``1 / sqrt(d_u · d_i)`` (weighted sampling by
    exponential keys), as a normalised ``(n_users + n_items)`` square adjacency of the kept
    edges."""
    d_u = np.bincount(users, minlength=n_users).astype(np.float64)
    d_i = np.bincount(items, minlength=n_items).astype(np.float64)
    weight = 1.0 / np.sqrt(d_u[users] * d_i[items])
    keys = np.log(rng.random(len(users))) / weight  # the `keep` largest: weighted, no replacement
    kept = np.argpartition(-keys, keep - 1)[:keep] if keep < len(users) else np.arange(len(users))
    u, i = users[kept], items[kept]
    ku = np.bincount(u, minlength=n_users).astype(np.float64)
    ki = np.bincount(i, minlength=n_items).astype(np.float64)
    val = (1.0 / np.sqrt(ku[u] * ki[i])).astype(np.float32)
    n = n_users + n_items
    return sp.csr_matrix((np.concatenate([val, val]),
                          (np.concatenate([u, n_users + i]), np.concatenate([n_users + i, u]))),
                         shape=(n, n))


@functools.cache
def _net_class():
    import torch

    class FreedomNet(torch.nn.Module):
        def __init__(self, ctx, params: dict[str, Any], features: dict[str, np.ndarray],
                     device: str):
            super().__init__()
            from core.recommenders.neural import normalized_adjacency

            csr = ctx.train_csr
            self.n_users, self.n_items = csr.shape
            dim = int(params["dim"])
            self.device = device
            self.params_ = params
            self.user = torch.nn.Embedding(self.n_users, dim)
            self.item = torch.nn.Embedding(self.n_items, dim)
            torch.nn.init.xavier_uniform_(self.user.weight)
            torch.nn.init.xavier_uniform_(self.item.weight)
            self.item_graph = torch_sparse(torch, fused_item_graph(
                features, int(params["knn_k"]), float(params["image_weight"])), device)
            self.full_adj = torch_sparse(torch, normalized_adjacency(csr), device)
            self.adj = self.full_adj
            coo = csr.tocoo()
            self.edges = (coo.row.astype(np.int64), coo.col.astype(np.int64))
            self.feats = {m: torch.from_numpy(f).to(device) for m, f in features.items()}
            self.proj = torch.nn.ModuleDict(
                {m: torch.nn.Linear(f.shape[1], dim) for m, f in features.items()})

        def on_epoch(self, rng: np.random.Generator) -> None:
            dropout = float(self.params_["dropout"])
            n_edges = len(self.edges[0])
            keep = int(n_edges * (1.0 - dropout))
            if dropout <= 0 or keep < 1:
                self.adj = self.full_adj
                return
            self.adj = torch_sparse(torch, pruned_adjacency(
                *self.edges, self.n_users, self.n_items, keep, rng), self.device)

        def _forward(self, adj):
            h = self.item.weight
            for _ in range(int(self.params_["mm_layers"])):
                h = spmm(self.item_graph, h)
            ego = torch.cat([self.user.weight, self.item.weight])
            out = propagate(torch, adj, ego, int(self.params_["ui_layers"]))
            return out[:self.n_users], out[self.n_users:] + h

        def embeddings(self):
            return self._forward(self.full_adj)

        def loss(self, u, i, j):
            users, items = self._forward(self.adj)
            loss = bpr_loss(torch, users[u], items[i], items[j])
            reg = float(self.params_["reg_weight"])
            if reg > 0:
                for m, f in self.feats.items():
                    p = self.proj[m](f)
                    loss = loss + reg * bpr_loss(torch, users[u], p[i], p[j])
            return loss

    return FreedomNet


@register
class FreedomRecommender(BPRTechnique):
    """FREEDOM-style: frozen fused kNN item graphs from text and photo features + a pruned
    LightGCN user–item graph (BPR)."""

    name = "freedom"
    label = "FREEDOM"
    modalities = ("text", "image")
    defaults = {"knn_k": 10, "image_weight": 0.1, "mm_layers": 1, "ui_layers": 2,
                "dropout": 0.8, "reg_weight": 1e-3}
    grid = {"dropout": [0.8, 0.9], "reg_weight": [0.0, 1e-3]}

    def build(self, torch, ctx, params: dict[str, Any], features: dict[str, np.ndarray],
              device: str):
        return _net_class()(ctx, params, features, device).to(device)
