"""Losses for multi-label training.

``wcel`` is equation (1) of the reference study, the weighted cross-entropy of Wang et al.
(2017), divided by the number of label entries so that its scale does not depend on the batch
size (derivation: docs/method.md). A batch without positives (or negatives) drops that term;
under DDP the counts are those of the global batch. A target that is NaN (an unknown label:
``cxr14.metadata.label_targets``) is masked out of every loss: it counts in neither |P| nor |N|
and adds nothing to any sum.
"""

from __future__ import annotations

import functools

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _known(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask of known targets and the targets with unknown ones set to 0."""
    known = ~torch.isnan(targets)
    return known.float(), torch.where(known, targets, torch.zeros_like(targets))


def wcel(logits: torch.Tensor, targets: torch.Tensor, sync: bool = False) -> torch.Tensor:
    """Equation (1) over the batch's known labels; ``sync``: count |P| and |N| over all DDP
    ranks."""
    logits = logits.float()
    known, targets = _known(targets)
    pos_sum = -(targets * F.logsigmoid(logits)).sum()
    neg_sum = -(known * (1 - targets) * F.logsigmoid(-logits)).sum()
    counts = torch.stack([targets.sum(), (known * (1 - targets)).sum()]).detach()
    scale = 1.0
    if sync and dist.is_available() and dist.is_initialized():
        dist.all_reduce(counts)
        # DDP averages gradients over ranks; undo it so the sum over ranks is the global loss.
        scale = dist.get_world_size()
    n_pos, n_neg = counts.clamp(min=1).unbind()
    return scale * (pos_sum / n_pos + neg_sum / n_neg)


def _masked_bce(logits, targets, pos_weight=None) -> torch.Tensor:
    known, targets = _known(targets)
    entries = F.binary_cross_entropy_with_logits(
        logits.float(), targets, pos_weight=pos_weight, reduction="none"
    )
    return (known * entries).sum() / known.sum().clamp(min=1)


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Plain (unweighted) binary cross-entropy, averaged over the known entries."""
    return _masked_bce(logits, targets)


def make_weighted_bce(pos_weight: torch.Tensor):
    """BCE with a fixed per-class positive weight (negatives / positives in the training set),
    averaged over the known entries."""

    def weighted_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _masked_bce(logits, targets, pos_weight.to(logits.device))

    return weighted_bce


def build_loss(name: str, train_labels: torch.Tensor | None = None, sync: bool = False):
    """Loss function by config name (``wcel`` | ``bce`` | ``weighted_bce``).

    ``sync``: the loss of a DDP training step (W-CEL's counts over the global batch).
    """
    if name == "wcel":
        return functools.partial(wcel, sync=sync)
    if name == "bce":
        return bce
    if name == "weighted_bce":
        if train_labels is None:
            raise ValueError("weighted_bce needs the training labels")
        known, targets = _known(train_labels)
        pos = targets.sum(0)
        neg = known.sum(0) - pos
        return make_weighted_bce(neg / pos.clamp(min=1))
    raise ValueError(f"unknown loss {name!r} (wcel, bce, weighted_bce)")
