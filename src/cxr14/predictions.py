"""The evaluation's prediction and metrics files, written and read in one place (no torch:
the jobs that read them, subgroups, expert labels, comparisons and bundles, start without it).

A prediction table has per image ``image``, ``patient``, ``prob_<class>`` and
``label_<class>``; ``metrics.csv`` has per class ``threshold_at_val`` among its columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def prediction_table(table: pd.DataFrame, rows, labels, p: np.ndarray) -> pd.DataFrame:
    """Image, patient, ``prob_<class>`` and ``label_<class>`` of the label table's ``rows``."""
    pred = table.loc[rows, ["image", "patient"]].reset_index(drop=True)
    pred[[f"prob_{c}" for c in labels]] = p
    pred[[f"label_{c}" for c in labels]] = table.loc[rows, labels].to_numpy()
    return pred


def prediction_arrays(pred: pd.DataFrame, labels, source) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a ``prediction_table`` read from ``source``, in the order
    ``labels``, naming the columns it lacks."""
    y_cols, p_cols = [f"label_{c}" for c in labels], [f"prob_{c}" for c in labels]
    missing = [c for c in (*y_cols, *p_cols) if c not in pred]
    if missing:
        raise ValueError(f"{source} has no column(s) {', '.join(missing)}")
    return pred[y_cols].to_numpy(), pred[p_cols].to_numpy()


def read_predictions(path, labels) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a ``prediction_table`` file, in the order ``labels``."""
    return prediction_arrays(pd.read_csv(path), labels, path)


def read_thresholds(metrics_csv, labels) -> np.ndarray:
    """The validation thresholds (``threshold_at_val``) of ``labels`` in a ``metrics_table``
    file, refusing a class without one by name."""
    metrics = pd.read_csv(metrics_csv).set_index("label")
    column = metrics.get("threshold_at_val", pd.Series(dtype=float))
    bad = [c for c in labels if c not in column.index or pd.isna(column[c])]
    if bad:
        raise ValueError(f"{metrics_csv} has no validation threshold (threshold_at_val) for {bad}")
    return column[labels].to_numpy(float)
