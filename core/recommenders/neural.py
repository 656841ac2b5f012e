"""Collaborative models trained with BPR in torch, fed by cached item features: the shared trainer
of ``lightgcn``, ``vbpr``, ``freedom`` and ``fusion``.

A technique here is a ``BPRTechnique`` subclass that says which item features it reads
(``modalities``), its hyperparameters (``defaults``) and the small grid searched on validation
(``grid``), and builds its network (``build``: an object with ``parameters()``, ``loss(users, pos,
neg)``, ``embeddings()`` and optionally ``on_epoch(rng)``). This module does the rest, the same way
for all of them:

* **Features.** Modality ``text`` is the item text vector of the run's text encoder (the mean of the
  item's train reviews, else its document; ``representations.item_text_vectors``), ``image`` the
  item photo vector of the image encoder (``item_photo_vectors``); rows are L2-normalised, items
  without one get zeros. Row params ``text_encoder`` / ``image_encoder`` pick other encoders (any
  spec: a CLIP or an ``align:`` space too). Param ``ablate`` (``text`` or ``image``) drops one
  modality: the PixelRec study's "w/o text" / "w/o image" rows. A modality the dataset has no
  vector for at all (e.g. no photos) is dropped and said so in ``params["modalities_missing"]``.
* **Training.** BPR: each step takes a batch of train pairs ``(u, i)`` in a seeded random order and
  one negative ``j`` per pair, drawn uniformly among the items ``u`` has not interacted with in
  train; the loss is ``-log σ(s(u, i) - s(u, j))`` averaged, plus the network's regularisation.
  Adam, on CUDA when present, else CPU; seeded (weights, order, negatives) and run with torch's
  deterministic algorithms, so the same seed gives the same model whatever the thread timing.
* **Early stopping.** With tuning on (``ctx.tuning()``) the validation nDCG@10 of the current
  embeddings is measured every ``eval_every`` epochs; training stops after ``patience``
  measurements without an improvement above ``TOLERANCE`` (or at ``max_epochs``), and the
  embeddings of the best measurement are kept. Without tuning the network trains ``epochs`` epochs.
* **Grid.** With tuning on, every combination of ``grid`` (minus the params given in the row) is
  trained with early stopping; the best validation nDCG@10 wins (ties within ``TOLERANCE``: the
  first tried). ``params["tuning"]`` records each trial's score, best epoch and stopping epoch.
* **Scoring.** ``user embeddings @ item embeddings.T`` (float64 products, so ties break the same in
  any batch), popularity for users without train history.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from core.errors import TechniqueUnavailable
from core.recommenders.base import FitContext
from core.recommenders.baselines import PopularityFallback

#: validation nDCG@10 differences at most this large are ties (early stopping and the grid)
TOLERANCE = 1e-4
MODALITIES = ("text", "image")
#: hyperparameters every BPR technique has (a technique's ``defaults`` add to / override them)
TRAINING_DEFAULTS: dict[str, Any] = {
    "dim": 64, "lr": 5e-3, "batch": 2048, "epochs": 100, "max_epochs": 300, "eval_every": 5,
    "patience": 5,
}


def sample_negatives(train_csr: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator,
                     tries: int = 20) -> np.ndarray:
    """One item per user of ``users`` drawn uniformly among the items that user has no train
    interaction with: uniform draws, redrawn up to ``tries`` times where they hit a train item,
    then drawn from the user's unseen items directly (a user who has every item keeps a draw).
    ``train_csr`` must have sorted indices."""
    n_items = train_csr.shape[1]
    users = np.asarray(users, dtype=np.int64)
    neg = rng.integers(0, n_items, size=len(users))
    todo = np.arange(len(users))
    for _ in range(tries):
        todo = todo[_has_pairs(train_csr, users[todo], neg[todo])]
        if not len(todo):
            return neg
        neg[todo] = rng.integers(0, n_items, size=len(todo))
    for k in todo[_has_pairs(train_csr, users[todo], neg[todo])]:
        row = train_csr.indices[train_csr.indptr[users[k]]:train_csr.indptr[users[k] + 1]]
        unseen = np.setdiff1d(np.arange(n_items), row, assume_unique=True)
        if len(unseen):
            neg[k] = unseen[rng.integers(0, len(unseen))]
    return neg


def _has_pairs(csr: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``csr[rows[k], cols[k]] != 0`` for each k, vectorised (indices sorted per row)."""
    out = np.zeros(len(rows), dtype=bool)
    if not len(rows):
        return out
    start, end = csr.indptr[rows], csr.indptr[rows + 1]
    idx = csr.indices
    # binary search of cols[k] in idx[start[k]:end[k]]
    lo, hi = start.copy(), end.copy()
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        go_right = active & (idx[np.minimum(mid, len(idx) - 1)] < cols)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    found = lo < end
    out[found] = idx[lo[found]] == cols[found]
    return out


def normalized_adjacency(train_csr: sp.csr_matrix) -> sp.csr_matrix:
    """The symmetric normalised user–item graph ``D^-1/2 A D^-1/2`` of LightGCN, as a
    ``(n_users + n_items)`` square CSR: users first, then items; ``A`` has an edge per train pair
    in both directions, ``D`` its degrees (isolated nodes keep zero rows)."""
    r = (train_csr > 0).astype(np.float32)
    n_u, n_i = r.shape
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    d = sp.diags(inv.astype(np.float32))
    out = (d @ a @ d).tocsr()
    out.resize((n_u + n_i, n_u + n_i))
    return out


def torch_sparse(torch, m: sp.spmatrix, device: str) -> tuple:
    """A scipy sparse matrix as an operator for ``spmm``: ``(A, Aᵀ)`` as torch CSR tensors
    (float32) on ``device`` (one tensor twice when ``A`` is symmetric)."""

    def csr(x: sp.spmatrix):
        x = sp.csr_matrix(x, dtype=np.float32)
        x.sort_indices()
        with warnings.catch_warnings():  # "CSR support is in beta": the product is all we use
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.from_numpy(x.indptr.astype(np.int64)),
                torch.from_numpy(x.indices.astype(np.int64)),
                torch.from_numpy(x.data), size=x.shape, device=device, check_invariants=True)

    m = sp.csr_matrix(m, dtype=np.float32)
    a = csr(m)
    symmetric = m.shape[0] == m.shape[1] and (m != m.T).nnz == 0
    return (a, a if symmetric else csr(m.T))


def spmm(op: tuple, x):
    """``A @ x`` for an operator of ``torch_sparse``, differentiable in ``x`` (the gradient is
    ``Aᵀ @ grad``, with the stored transpose: torch's own backward of a sparse product converts
    the matrix at every step and is tens of times slower on CPU)."""
    return _spmm_function().apply(op[0], op[1], x)


@functools.cache
def _spmm_function():
    import torch

    class SpMM(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, at, x):
            ctx.at = at
            return torch.sparse.mm(a, x)

        @staticmethod
        def backward(ctx, grad):
            return None, None, torch.sparse.mm(ctx.at, grad)

    return SpMM


@contextlib.contextmanager
def deterministic(torch):
    """torch's deterministic algorithms while training (restored after): with several CPU threads
    some backward reductions otherwise add in a varying order, and the attention of ``fusion``
    turns those last-bit differences into other rankings from one run to the next with the same
    seed (on CUDA an op without a deterministic version only warns)."""
    was, warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class BPRTechnique(PopularityFallback):
    """Base of the torch BPR techniques (see the module docstring for what it does).

    Subclasses set ``name``, ``label``, ``modalities`` (item features read: a subset of
    ``("text", "image")``; empty for an ID-only model), ``defaults`` and ``grid``, and implement
    ``build``.
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    grid: ClassVar[dict[str, list[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        mods = tuple(cls.__dict__.get("modalities", cls.modalities))
        if mods:  # the run's text/image encoders feed it (the CLI gives the defaults)
            cls.needs = frozenset(mods)
        super().__init_subclass__(**kwargs)

    # --- rows --------------------------------------------------------------------------------
    @classmethod
    def row_encoders(cls, params: Mapping[str, Any], encoders: Mapping[str, str]) -> dict[str, str]:
        ablate = params.get("ablate")
        out = {}
        for role in cls.modalities:
            spec = params.get(f"{role}_encoder") or encoders.get(role)
            if spec and role != ablate:
                out[role] = spec
        return out

    @classmethod
    def row_title(cls, params: Mapping[str, Any]) -> str:
        """``VBPR w/o text`` for an ablation row; encoder params show in the encoder column."""
        shown = {k: v for k, v in params.items()
                 if k not in ("ablate", "text_encoder", "image_encoder")}
        title = super().row_title(shown)
        return f"{title} w/o {params['ablate']}" if params.get("ablate") else title

    # --- the network (subclasses) ------------------------------------------------------------
    def build(self, torch, ctx: FitContext, params: dict[str, Any],
              features: dict[str, np.ndarray], device: str):
        """The network for one training: ``parameters()``, ``loss(users, pos, neg)`` (a scalar
        tensor: BPR + regularisation), ``embeddings()`` (``(user (n_users, d), item (n_items,
        d))`` tensors for scoring) and optionally ``on_epoch(rng)``."""
        raise NotImplementedError

    # --- features ----------------------------------------------------------------------------
    def features(self, ctx: FitContext) -> dict[str, np.ndarray]:
        """Modality -> ``(n_items, d)`` float32 item features (L2-normalised rows, zeros for items
        without one), ablation applied."""
        from core.recommenders.representations import item_photo_vectors, item_text_vectors

        ablate = self.params.get("ablate")
        if ablate is not None and ablate not in self.modalities:
            raise TechniqueUnavailable(
                f"{self.name}: ablate={ablate!r} is not one of its modalities "
                f"({', '.join(self.modalities) or 'none: it reads no item features'})")
        out: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}
        for role in self.modalities:
            if role == ablate:
                continue
            spec = self.params.get(f"{role}_encoder") or ctx.encoders.get(role)
            if not spec:
                missing[role] = f"no {role} encoder in the run (pass --{role}-encoder SPEC)"
                continue
            build = item_text_vectors if role == "text" else item_photo_vectors
            try:
                vecs, has = build(ctx, spec)
            except TechniqueUnavailable as exc:
                missing[role] = str(exc)
                continue
            if not np.asarray(has).any():
                missing[role] = f"no item has a {role} vector with {spec}"
                continue
            vecs = np.asarray(vecs, dtype=np.float32).copy()
            vecs[~np.asarray(has, bool)] = 0.0
            out[role] = vecs
            self.params[f"{role}_encoder"] = spec
        if missing:
            self.params["modalities_missing"] = missing
            for role, why in missing.items():
                ctx.log(f"{self.name}: without {role} features: {why}")
        if self.modalities and not out:
            raise TechniqueUnavailable(
                f"{self.name} needs item features (text or image) and has none: "
                + "; ".join(f"{r}: {w}" for r, w in missing.items()))
        self.params["modalities"] = sorted(out)
        return out

    # --- fit ---------------------------------------------------------------------------------
    def fit(self, ctx: FitContext) -> BPRTechnique:
        import torch

        self._remember(ctx)
        self._fit_fallback(ctx)
        if not hasattr(self, "_given"):  # what create_recommender fixed (kept across refits)
            self._given = {k: v for k, v in self.params.items()}
        self.params = dict(self._given)
        feats = self.features(ctx)
        base = {**TRAINING_DEFAULTS, **self.defaults}
        base.update({k: self._given[k] for k in base if k in self._given})
        validator = ctx.tuning()
        search = {k: v for k, v in self.grid.items() if k not in self._given}
        keys = list(search) if validator is not None else []
        trials = [dict(zip(keys, combo)) for combo in itertools.product(*search.values())] \
            if keys else [{}]
        device = _device()
        results: list[dict[str, Any]] = []
        best: tuple[float, int, tuple] | None = None
        t0 = time.perf_counter()
        for n, trial in enumerate(trials):
            params = {**base, **trial}
            with deterministic(torch):
                emb, info = self._train(torch, ctx, params, feats, device, validator,
                                        trial=(n + 1, len(trials)))
            results.append({**trial, **info})
            score = info.get("ndcg@10", 0.0)
            if best is None or score > best[0] + TOLERANCE:
                best = (score, n, emb)
        assert best is not None
        _, chosen, (self._user_emb, self._item_emb) = best
        self.params.update({k: v for k, v in base.items()})
        self.params.update({k: v for k, v in results[chosen].items() if k in search})
        self.params["device"] = device
        self.params["train_s"] = round(time.perf_counter() - t0, 2)
        if validator is not None:
            self.params["tuning"] = {
                "metric": "ndcg@10 on validation", "trials": results,
                "rule": f"best validation nDCG@10; ties within {TOLERANCE}: the first tried",
                "early_stopping": (f"validation every {base['eval_every']} epochs, stop after "
                                   f"{base['patience']} without improvement, keep the best")}
        else:
            self.params["loss"] = results[0]["loss"]
        return self

    def _train(self, torch, ctx: FitContext, params: dict[str, Any],
               feats: dict[str, np.ndarray], device: str, validator, trial: tuple[int, int]):
        """One training: ``((user emb, item emb) numpy, info)``."""
        seed = int(ctx.seed)
        torch.manual_seed(seed)
        rng = np.random.default_rng([seed, 11])
        net = self.build(torch, ctx, params, feats, device)
        opt = torch.optim.Adam(list(net.parameters()), lr=float(params["lr"]))
        train = ctx.train_csr.tocsr()
        if not train.has_sorted_indices:
            train = train.sorted_indices()
        coo = train.tocoo()
        pairs_u = coo.row.astype(np.int64)
        pairs_i = coo.col.astype(np.int64)
        n = len(pairs_u)
        batch = max(1, int(params["batch"]))
        epochs = int(params["max_epochs"] if validator is not None else params["epochs"])
        every, patience = int(params["eval_every"]), int(params["patience"])
        losses: list[float] = []
        best = {"score": -1.0, "epoch": 0, "emb": None}
        bad = 0
        job = f"training {self.name}" + (f" (trial {trial[0]}/{trial[1]})" if trial[1] > 1 else "")
        ctx.emit("train", job, done=0, total=epochs)
        epoch = 0
        for epoch in range(1, epochs + 1):
            if hasattr(net, "on_epoch"):
                net.on_epoch(rng)
            order = rng.permutation(n)
            total, steps = 0.0, 0
            for start in range(0, n, batch):
                sel = order[start:start + batch]
                u = pairs_u[sel]
                j = sample_negatives(train, u, rng)
                loss = net.loss(torch.from_numpy(u).to(device),
                                torch.from_numpy(pairs_i[sel]).to(device),
                                torch.from_numpy(j).to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
                steps += 1
            losses.append(total / max(1, steps))
            ctx.emit("train", job, done=epoch, total=epochs)
            if validator is not None and (epoch % every == 0 or epoch == epochs):
                self._user_emb, self._item_emb = self._embeddings(torch, net)
                score = float(validator.score(self))
                if score > best["score"] + TOLERANCE:
                    best = {"score": score, "epoch": epoch,
                            "emb": (self._user_emb, self._item_emb)}
                    bad = 0
                else:
                    bad += 1
                    if bad >= patience:
                        break
        ctx.emit("train", job, done=epochs, total=epochs)
        info: dict[str, Any] = {"epochs_run": epoch,
                                "loss_first": round(losses[0], 6) if losses else None,
                                "loss_last": round(losses[-1], 6) if losses else None}
        if validator is not None and best["emb"] is not None:
            info.update({"ndcg@10": round(best["score"], 6), "best_epoch": best["epoch"]})
            return best["emb"], info
        info["loss"] = [round(x, 6) for x in losses]
        return self._embeddings(torch, net), info

    @staticmethod
    def _embeddings(torch, net) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            was = getattr(net, "training", None)
            if was is not None:
                net.eval()
            u, i = net.embeddings()
            if was:
                net.train()
        return (u.detach().cpu().numpy().astype(np.float64),
                i.detach().cpu().numpy().astype(np.float64))

    # --- scoring -----------------------------------------------------------------------------
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        out = (self._user_emb[users] @ self._item_emb.T).astype(np.float32)
        return self._apply_fallback(users, out)


def bpr_loss(torch, u, i, j):
    """Mean ``-log σ(<u, i> - <u, j>)`` over a batch of embeddings."""
    return -torch.nn.functional.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()


def l2_reg(*tensors) -> Any:
    """Mean over the batch of the summed squared norms (LightGCN's embedding regulariser)."""
    total = sum((t ** 2).sum() for t in tensors)
    return total / (2 * tensors[0].shape[0])
