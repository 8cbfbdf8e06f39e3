"""Training on several data sets at once: their labels on one list of findings, one epoch index
over all their training splits, and one input normalisation (docs/cross_dataset.md).

Each data set keeps its own store, splits and oversampling index; a pooled run numbers their
images one after the other (set k's row r is ``offset_k + r``). Its classes are every finding
any of them labels (``cxr14.findings.pooled_findings``); a finding a set does not label is
unknown (NaN) for its images, so the loss and the validation AUROC mask it.

The pooled model normalises every input with one average image and one pixel std: the sets'
own, weighted by their share of the epoch. Not per-set statistics: a deployed model meets
images of hospitals it has never seen, and must normalise them without knowing their source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.findings import FINDING, pooled_findings, targets_for
from cxr14.metadata import label_columns, label_targets, read_labels
from cxr14.splits import label_subset

POOLING = ("proportional", "equal")


@dataclass
class DataSet:
    """One data set's part of a training: its labels as the model's targets and its split."""

    targets: np.ndarray  # (n, classes), 1/0/NaN
    split: np.ndarray  # (n,) train/val/test
    index: np.ndarray  # training store rows, repeated by the oversampling (or plain)
    patients: np.ndarray | None = None  # (n,) patient ids (for a share of the labels)


def as_list(paths) -> list:
    """One path or a list of paths (one per data set) as a list."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def model_classes(
    labels_csvs: Sequence, vocabularies: Sequence[str] | None, findings: pd.DataFrame | None
) -> tuple[list[str], str | None]:
    """The classes of a model trained on these data sets and their vocabulary: one set's own
    labels, or the findings of several (``findings``: the table, ``cxr14.findings``). Reads
    only the files' headers."""
    label_lists = [label_columns(pd.read_csv(p, nrows=0)) for p in labels_csvs]
    if len(label_lists) == 1:
        return label_lists[0], (vocabularies[0] if vocabularies else None)
    if not vocabularies or len(vocabularies) != len(label_lists):
        raise ValueError("training on several data sets needs each one's label vocabulary")
    return pooled_findings(list(zip(label_lists, vocabularies, strict=True)), findings), FINDING


def read_dataset(
    labels_csv, splits_csv, index_npy, policy, classes, class_vocabulary, vocabulary, findings
) -> DataSet:
    """A data set's targets on the model's ``classes`` (under its label ``policy``), its split
    and its training index (``index_npy``; None: every training image once)."""
    table, labels = read_labels(labels_csv)
    splits = pd.read_csv(splits_csv)
    split = splits["split"].to_numpy()
    if len(split) != len(table):
        raise ValueError(f"{splits_csv} and {labels_csv} have different row counts")
    y = pd.DataFrame(label_targets(table[labels], *policy), columns=labels)
    targets = targets_for(classes, class_vocabulary, y, vocabulary, findings)
    index = np.load(index_npy) if index_npy else np.flatnonzero(split == "train")
    index = np.asarray(index, dtype=np.int64)
    return DataSet(targets.astype(np.float32), split, index, splits["patient"].to_numpy())


def labelled(part: DataSet, fraction: float, seed: int) -> DataSet:
    """``part`` learning from ``fraction`` of its training images (``splits.label_subset``:
    whole patients, stratified, nested); its index keeps only their rows, repeats included."""
    train = part.split == "train"
    keep = np.zeros(len(train), dtype=bool)
    keep[train] = label_subset(part.targets[train], part.patients[train], fraction, seed)
    return replace(part, index=part.index[keep[part.index]])


def pooled_index(parts: Sequence[DataSet], pooling: str, seed: int) -> list[np.ndarray]:
    """Each set's part of the epoch index: its own (``proportional``), or under ``equal``
    repeated to the largest set's length (whole copies, then a seeded sample of the rest)."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")
    if pooling == "proportional" or len(parts) == 1:
        return [p.index for p in parts]
    target = max(len(p.index) for p in parts)
    out = []
    for k, p in enumerate(parts):
        whole, rest = divmod(target, len(p.index))
        extra = np.random.default_rng([seed, k]).choice(p.index, rest, replace=False)
        out.append(np.concatenate([np.tile(p.index, whole), extra]))
    return out


def pooled_normalization(average_npys, stats_jsons, weights) -> tuple[np.ndarray, float]:
    """One average image and pixel std for several sets: their own, mixed with ``weights``
    (each set's share of the epoch): the mixture's mean image and its overall std."""
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    stats = [json.loads(Path(p).read_text()) for p in stats_jsons]
    average = sum(wk * np.load(p).astype(np.float64) for wk, p in zip(w, average_npys, strict=True))
    mean = sum(wk * s["mean"] for wk, s in zip(w, stats, strict=True))
    second = sum(wk * (s["std"] ** 2 + s["mean"] ** 2) for wk, s in zip(w, stats, strict=True))
    return average.astype(np.float32), float(np.sqrt(max(second - mean**2, 0.0)))
