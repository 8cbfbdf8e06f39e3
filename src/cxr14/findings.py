"""Harmonised findings: what each data set's labels mean in one shared list of findings.

Data sets name and define their labels differently (NIH's ``Effusion`` is CheXpert's ``Pleural
Effusion``; NIH's ``Infiltration`` has no CheXpert counterpart). ``findings.csv`` (a data file:
its ``note`` column says why each row is matched or not; docs/cross_dataset.md gives the
sources) has one row per finding, its shared name in ``finding``, and one column per
*vocabulary* (a family of label sets: ``nih``; ``chexpert``, also MIMIC-CXR's labellers'),
holding that vocabulary's label for the finding or nothing. Labels named as findings already
(a manifest's, a model trained on several data sets) are in the ``finding`` vocabulary.

A model is scored on a data set over the findings both have; a finding a data set does not
label is unknown there (masked in training, absent from that set's metrics), never negative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS_CSV = Path(__file__).with_name("findings.csv")
# The vocabulary of labels that are named by their findings already.
FINDING = "finding"


def read_findings(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The harmonisation table (``FINDINGS_CSV`` by default), checked: unique findings, and
    each vocabulary's labels unique."""
    path = path or FINDINGS_CSV
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if FINDING not in table:
        raise ValueError(f"{path}: no {FINDING!r} column (columns: {', '.join(table.columns)})")
    for column in [c for c in table.columns if c != "note"]:
        names = table[column][table[column] != ""]
        twice = names[names.duplicated()].tolist()
        if twice:
            raise ValueError(f"{path}: column {column!r} names {twice[0]!r} twice")
    return table


def vocabularies(table: pd.DataFrame) -> list[str]:
    """The vocabularies the table maps (its columns besides ``finding`` and ``note``)."""
    return [c for c in table.columns if c not in (FINDING, "note")]


def to_findings(labels: Sequence[str], vocabulary: str, table: pd.DataFrame) -> dict[str, str]:
    """Each of ``labels`` (of ``vocabulary``) -> its finding. A label the table does not list
    is a finding of its own name (matched by name only)."""
    if vocabulary == FINDING:
        return {label: label for label in labels}
    if vocabulary not in table:
        known = ", ".join([FINDING, *vocabularies(table)])
        raise ValueError(f"unknown label vocabulary {vocabulary!r}; known: {known}")
    column = table.set_index(vocabulary)[FINDING]
    return {label: column.get(label, label) for label in labels}


def shared_labels(
    model_labels: Sequence[str],
    model_vocabulary: str,
    data_labels: Sequence[str],
    data_vocabulary: str,
    table: pd.DataFrame,
) -> list[tuple[str, str]]:
    """(model class, data label) pairs of the findings both have, in the model's class order:
    the classes a model can be scored on in a data set."""
    model = to_findings(model_labels, model_vocabulary, table)
    data = {f: label for label, f in to_findings(data_labels, data_vocabulary, table).items()}
    return [(c, data[f]) for c, f in model.items() if f in data]


def pooled_findings(label_sets: Sequence[tuple[Sequence[str], str]], table) -> list[str]:
    """The classes of a model trained on several data sets (``(labels, vocabulary)`` each):
    every finding any of them labels, in the table's order, then unlisted ones as met."""
    found = [f for labels, vocab in label_sets for f in to_findings(labels, vocab, table).values()]
    listed = [f for f in table[FINDING] if f in found]
    return listed + [f for f in dict.fromkeys(found) if f not in listed]


def targets_for(
    classes: Sequence[str], class_vocabulary: str, y: pd.DataFrame, vocabulary: str, table
) -> np.ndarray:
    """A data set's targets ``y`` (columns: its labels of ``vocabulary``; 1/0/NaN) as the
    columns ``classes`` of a model: NaN (unknown) where the data set lacks the finding. A
    model of the data set's own labels takes them as they are (no table needed)."""
    if list(classes) == list(y.columns):
        return y.to_numpy(dtype=float)
    pairs = dict(shared_labels(classes, class_vocabulary, list(y.columns), vocabulary, table))
    out = np.full((len(y), len(classes)), np.nan)
    for k, c in enumerate(classes):
        if c in pairs:
            out[:, k] = y[pairs[c]].to_numpy(dtype=float)
    return out
