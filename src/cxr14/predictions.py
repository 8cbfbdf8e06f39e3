"""The evaluation's prediction and metrics files, written and read in one place (no torch:
the jobs that read them, subgroups, expert labels, comparisons and bundles, start without it).

A prediction table has per image ``image``, ``patient``, ``prob_<class>`` and
``label_<class>``; ``metrics.csv`` has per class ``threshold_at_val`` among its columns. A run's
prediction files (one per split and seed) are read together by ``pool_seeds`` and aligned with
another run's by ``aligned_runs``.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def pool_seeds(run: str, predictions: Sequence, seeds: Sequence[int]) -> dict[int, pd.DataFrame]:
    """Per seed, its folds' predictions concatenated; an image twice within a seed stops."""
    pooled = {}
    for s in dict.fromkeys(int(s) for s in seeds):
        files = [f for f, t in zip(predictions, seeds, strict=True) if int(t) == s]
        # The i-th file of a seed is its i-th split (fold): each scored by its own model.
        frames = [pd.read_csv(f).assign(_file=str(f), _fold=i) for i, f in enumerate(files)]
        df = pd.concat(frames, ignore_index=True)
        twice = df[df["image"].duplicated(keep=False)]
        if len(twice):
            image = twice["image"].iloc[0]
            where = sorted(set(twice.loc[twice["image"] == image, "_file"]))
            raise ValueError(
                f"run {run!r}, seed {s}: image {image!r} appears twice, in "
                f"{' and '.join(where)} (repeated images: {twice['image'].nunique()})"
            )
        pooled[s] = df.drop(columns="_file").set_index("image")
    return pooled


def _check_same_images(run_a, run_b, pooled_a, pooled_b) -> pd.Index:
    """The test images of the first seed of ``run_a``, after checking every seed of both runs
    was scored on exactly those: otherwise the two AUROCs are not comparable."""
    ref = next(iter(pooled_a.values())).index
    for run, pooled in ((run_a, pooled_a), (run_b, pooled_b)):
        for s, df in pooled.items():
            if set(df.index) == set(ref):
                continue
            only = sorted(set(df.index) ^ set(ref))
            raise ValueError(
                f"runs {run_a!r} and {run_b!r} were not scored on the same test images: "
                f"{run!r} seed {s} has {len(df)} images, {run_a!r} seed "
                f"{next(iter(pooled_a))} has {len(ref)}; images in only one of them: {len(only)}, "
                f"e.g. {only[0]!r}"
            )
    return ref


def on_shared_findings(pooled_a: dict, pooled_b: dict, names_a: dict, names_b: dict):
    """Two runs' pooled predictions (``pool_seeds``) with their classes renamed to findings
    (``names_*``: class -> finding, ``cxr14.findings.to_findings``) and kept where both runs
    have the finding (in run a's order); and each run's class names of those findings. Runs
    trained on different data sets name and cover findings differently."""
    shared = [f for f in names_a.values() if f in set(names_b.values())]
    out, kept = [], []
    for pooled, names in ((pooled_a, names_a), (pooled_b, names_b)):
        back = {f: c for c, f in names.items()}
        rename = {f"{k}_{back[f]}": f"{k}_{f}" for f in shared for k in ("prob", "label")}
        keep = ["patient", "_fold", *rename.values()]
        out.append({s: df.rename(columns=rename)[keep] for s, df in pooled.items()})
        kept.append([back[f] for f in shared])
    return out[0], out[1], kept[0], kept[1]


def prob_labels(df: pd.DataFrame) -> list[str]:
    """The classes of a prediction table (its ``prob_<class>`` columns)."""
    return [c.removeprefix("prob_") for c in df.columns if c.startswith("prob_")]


def aligned_runs(run_a, run_b, pooled_a, pooled_b):
    """y, the two stacks (S, n, C), the patients, the labels and each image's fold (the
    position of its file among its seed's), aligned by image; runs scored on other images,
    labels, patients or folds are refused by name."""
    images = _check_same_images(run_a, run_b, pooled_a, pooled_b)
    first = next(iter(pooled_a.values())).loc[images]
    labels = prob_labels(first)
    label_cols = [f"label_{c}" for c in labels]
    y = first[label_cols].to_numpy()
    stacks = []
    for run, pooled in ((run_a, pooled_a), (run_b, pooled_b)):
        stack = []
        for s, df in pooled.items():
            if set(prob_labels(df)) != set(labels):
                raise ValueError(f"{run!r} seed {s} predicts {prob_labels(df)}, {run_a!r} {labels}")
            df = df.loc[images]
            same = np.array_equal(df[label_cols].to_numpy(float), y.astype(float), equal_nan=True)
            if not same or not np.array_equal(
                df[["patient", "_fold"]].to_numpy(), first[["patient", "_fold"]].to_numpy()
            ):
                raise ValueError(
                    f"runs {run_a!r} and {run_b!r} disagree on the labels, patients or folds "
                    f"of the test images ({run!r} seed {s})"
                )
            stack.append(df[[f"prob_{c}" for c in labels]].to_numpy(dtype=float))
        stacks.append(np.stack(stack))
    return y, stacks[0], stacks[1], first["patient"].to_numpy(), labels, first["_fold"].to_numpy()
