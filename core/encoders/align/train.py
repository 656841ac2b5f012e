"""Training the projection heads: symmetric InfoNCE with a learnable temperature, towers frozen.

With ``head="locked"`` the text side has no head (its vectors are used as they are) and only the
image head is trained; otherwise both towers get a head (``linear`` or ``mlp``) into ``dim``.

Each step takes a batch of pairs ``(text, photo)`` and scores every text of the batch against
every photo (cosine × ``exp(logit_scale)``). A batch can hold several pairs of one text (an item
document with each of its photos) or one photo (its caption pair and its item pair), so the target
of each row is spread evenly over every column that is a known pair of it (not only the diagonal);
the loss is the mean of the text→photo and photo→text cross-entropies. Seeded (weights, batch
order), on CPU unless CUDA is present; heads come back as numpy arrays (``heads.Heads``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from core.encoders.align.config import AlignConfig
from core.encoders.align.heads import Heads

#: ceiling of the logit scale (CLIP's: 100)
MAX_LOGIT_SCALE = math.log(100.0)


def _head(torch, d_in: int, d_out: int, cfg: AlignConfig):
    nn = torch.nn
    if cfg.head == "mlp":
        return nn.Sequential(nn.Linear(d_in, 2 * d_out), nn.ReLU(), nn.Linear(2 * d_out, d_out))
    return nn.Sequential(nn.Linear(d_in, d_out))


def _layers(head) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch

    out = []
    for m in head:
        if isinstance(m, torch.nn.Linear):
            out.append((m.weight.detach().cpu().numpy().T.copy(),
                        m.bias.detach().cpu().numpy().copy()))
    return out


def contrastive_loss(torch, t, v, logit_scale, positive):
    """Symmetric InfoNCE over a batch: ``t`` (B, d) and ``v`` (B, d) normalised, ``positive``
    (B, B) bool with a True diagonal."""
    logits = logit_scale.exp() * t @ v.T
    target = positive.float()
    t2v = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    v2t = -(target.T / target.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (t2v + v2t) / 2


def train_heads(text_x: np.ndarray, image_x: np.ndarray, text_idx: np.ndarray,
                photo_idx: np.ndarray, cfg: AlignConfig,
                on_epoch: Callable[[int, float], None] | None = None) -> Heads:
    """Heads trained on the pairs ``(text_idx[i], photo_idx[i])`` of the tower vectors
    ``text_x`` (n_texts, d_t) and ``image_x`` (n_photos, d_i).

    ``on_epoch(epoch, mean loss)`` is called after each epoch (1-based). ``info`` of the result
    holds ``loss`` (one mean per epoch), ``seconds`` and ``device``.
    """
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg.seed)
    gen = np.random.default_rng([cfg.seed, 2])
    if cfg.head == "locked":  # the text space as it is; the image head maps into it
        text_head = torch.nn.Sequential().to(device)
        image_head = _head(torch, image_x.shape[1], text_x.shape[1], cfg).to(device)
    else:
        text_head = _head(torch, text_x.shape[1], cfg.dim, cfg).to(device)
        image_head = _head(torch, image_x.shape[1], cfg.dim, cfg).to(device)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / cfg.temp), device=device))
    params = [*text_head.parameters(), *image_head.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.wd)

    tx = torch.from_numpy(np.array(text_x, dtype=np.float32)).to(device)
    ix = torch.from_numpy(np.array(image_x, dtype=np.float32)).to(device)
    t_all = np.asarray(text_idx, dtype=np.int64)
    p_all = np.asarray(photo_idx, dtype=np.int64)
    n_photos = int(image_x.shape[0])
    known = np.unique(t_all * n_photos + p_all)  # every pair, for the batch's positive mask
    n = len(t_all)
    batch = max(2, min(cfg.batch, n))
    losses: list[float] = []
    for epoch in range(1, cfg.epochs + 1):
        order = gen.permutation(n)
        total, steps = 0.0, 0
        for start in range(0, n, batch):
            sel = order[start:start + batch]
            if len(sel) < 2:
                continue
            bt, bp = t_all[sel], p_all[sel]
            codes = bt[:, None] * n_photos + bp[None, :]
            positive = torch.from_numpy(np.isin(codes, known)).to(device)
            t = F.normalize(text_head(tx[bt]), dim=1)
            v = F.normalize(image_head(ix[bp]), dim=1)
            loss = contrastive_loss(torch, t, v, logit_scale, positive)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(1, steps))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return Heads(layers={"text": _layers(text_head), "image": _layers(image_head)},
                 logit_scale=float(logit_scale.detach().exp()),
                 info={"loss": losses, "seconds": time.perf_counter() - t0, "device": device,
                       "steps_per_epoch": int(math.ceil(n / batch))})
