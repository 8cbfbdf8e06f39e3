"""Patient-wise train/val/test splits.

No patient ever appears in two splits (images of one patient are near-duplicates; splitting by
image leaks them into the test set). Within that constraint, per-class prevalence is kept close
across splits by iterative stratification over patients (Sechidis et al., ECML-PKDD 2011,
applied to groups): classes are visited from rarest to most common, and each patient who has
the class and is not yet placed goes to the split that still lacks the most positives of it.
Patients without findings then fill the splits up to their image quotas. Everything is
deterministic given the seed and independent of the row order of the metadata.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.metadata import positives, read_image_list, read_labels

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def stratified_group_split(
    labels: np.ndarray, groups: np.ndarray, fractions: dict[str, float], seed: int
) -> np.ndarray:
    """Assign each row to a split name so that no group spans two splits.

    ``labels``: (n, k) 0/1; ``groups``: (n,) group ids (patients); ``fractions``: split name ->
    fraction of images (normalised to sum 1). Returns an (n,) array of split names.
    """
    names = list(fractions)
    frac = np.array([fractions[s] for s in names], dtype=float)
    if (frac < 0).any() or frac.sum() <= 0:
        raise ValueError(f"split fractions must be >= 0 and not all 0: {fractions}")
    frac = frac / frac.sum()
    uniq, inverse = np.unique(groups, return_inverse=True)
    g_pos = np.zeros((len(uniq), labels.shape[1]), dtype=np.int64)
    np.add.at(g_pos, inverse, labels.astype(np.int64))
    g_n = np.bincount(inverse, minlength=len(uniq))

    need_pos = frac[:, None] * g_pos.sum(0)[None, :]  # (splits, classes) still wanted
    need_n = frac * g_n.sum()
    assigned = np.full(len(uniq), -1)
    rng = np.random.default_rng(seed)

    def place(g: int, score: np.ndarray) -> None:
        # Highest score wins; ties go to the split furthest below its image quota, then random.
        key = np.lexsort((rng.random(len(names)), -need_n, -score))
        s = key[0]
        assigned[g] = s
        need_pos[s] -= g_pos[g]
        need_n[s] -= g_n[g]

    for k in np.argsort(g_pos.sum(0), kind="stable"):  # rarest class first
        for g in rng.permutation(np.flatnonzero((g_pos[:, k] > 0) & (assigned < 0))):
            place(g, need_pos[:, k])
    for g in rng.permutation(np.flatnonzero(assigned < 0)):
        place(g, need_n)
    # A split with a zero fraction never receives a group: its scores start at 0 and only fall.
    return np.array(names, dtype=object)[assigned[inverse]]


def label_order(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """The groups (patients) in the order a label-efficiency subset takes them: any prefix is
    stratified by class. Each patient is filed under its rarest positive class (or under none),
    shuffled within it (``seed``), and placed at (rank + 1/2) / size of its class: each class's
    patients spread evenly along the order. ``labels``: (n, k) 1/0/NaN per row."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    g_pos = np.zeros((len(uniq), labels.shape[1]), dtype=np.int64)
    np.add.at(g_pos, inverse, np.nan_to_num(labels, nan=0.0).astype(np.int64))
    has = g_pos > 0
    rarity = np.where(has, has.sum(0)[None, :], np.iinfo(np.int64).max)
    stratum = np.where(has.any(1), rarity.argmin(1), labels.shape[1])
    rng = np.random.default_rng(seed)
    shuffle = rng.permutation(len(uniq))
    position = np.empty(len(uniq))
    for s in np.unique(stratum):
        members = shuffle[stratum[shuffle] == s]
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    return uniq[np.lexsort((rng.random(len(uniq)), position))]


def label_subset(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows (a boolean mask) of the first whole patients of ``label_order`` holding
    ``fraction`` of the images (at least one patient): nested across fractions for one seed."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], not {fraction}")
    if fraction == 1:
        return np.ones(len(groups), dtype=bool)
    order = label_order(labels, groups, seed)
    sizes = pd.Series(groups).value_counts().reindex(order).to_numpy()
    n = max(1, int(np.searchsorted(np.cumsum(sizes), fraction * len(groups)) + 1))
    return np.isin(groups, order[:n])


def patient_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) of each row: k patient-disjoint folds of about equal size,
    stratified over the labels like ``stratified_group_split`` (every patient in exactly one
    fold)."""
    n_groups = len(np.unique(groups))
    if not 2 <= k <= n_groups:
        raise ValueError(
            f"split.folds must be between 2 and the number of patients ({n_groups}), not {k}"
        )
    names = stratified_group_split(labels, groups, {str(f): 1 / k for f in range(k)}, seed)
    return names.astype(int)


def official_split(
    table: pd.DataFrame,
    y: np.ndarray,
    train_val_list,
    test_list,
    val_fraction: float,
    seed: int,
    val_list=None,
) -> np.ndarray:
    """The official test list as the test split; ``val_fraction`` of the images of the
    train/val list (whole patients) as validation, or the images of ``val_list`` where the data
    set fixes its validation split too. Leaky lists and images in neither are refused by
    name."""
    test = set(read_image_list(test_list))
    train_val = set(read_image_list(train_val_list))
    both = test & train_val
    if both:
        raise DataError(f"{sorted(both)[0]!r} is in both {test_list} and {train_val_list}")
    in_test = table["image"].isin(test).to_numpy()
    in_tv = table["image"].isin(train_val).to_numpy()
    neither = ~(in_test | in_tv)
    if neither.any():
        raise DataError(
            f"{int(neither.sum())} image(s) in neither {train_val_list} nor {test_list}, "
            f"first: {table['image'][np.argmax(neither)]!r}"
        )
    leaked = set(table.patient[in_test]) & set(table.patient[in_tv])
    if leaked:
        raise DataError(
            f"patient {min(leaked)} has images in both {train_val_list} and {test_list} "
            f"({len(leaked)} patients in both)"
        )
    split = np.empty(len(table), dtype=object)
    split[in_test] = "test"
    if val_list is not None and read_image_list(val_list):
        split[in_tv] = _fixed_val(table, in_tv, val_list)
        return split
    fractions = {"train": 1 - val_fraction, "val": val_fraction}
    groups = table["patient"].to_numpy()[in_tv]
    split[in_tv] = stratified_group_split(y[in_tv], groups, fractions, seed)
    return split


def _fixed_val(table: pd.DataFrame, in_tv: np.ndarray, val_list) -> np.ndarray:
    """``val`` for the train/val images of ``val_list``, ``train`` for the others; a patient
    in both is refused."""
    in_val = table["image"].isin(set(read_image_list(val_list))).to_numpy() & in_tv
    leaked = set(table.patient[in_val]) & set(table.patient[in_tv & ~in_val])
    if leaked:
        raise DataError(f"patient {min(leaked)} has images in {val_list} and in training")
    return np.where(in_val[in_tv], "val", "train")


def kfold_split(
    y: np.ndarray, groups: np.ndarray, folds: int, fold: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``fold`` (1..folds) of patient-wise cross-validation: that fold's patients are the
    test split, ``val_fraction`` of the other patients (stratified) the validation split.
    Returns (split name per row, fold number 1..folds per row)."""
    if not 1 <= fold <= folds:
        raise ValueError(f"fold must be between 1 and split.folds ({folds}), not {fold}")
    number = patient_folds(y, groups, folds, seed) + 1
    split = np.full(len(y), "test", dtype=object)
    rest = number != fold
    fractions = {"train": 1 - val_fraction, "val": val_fraction}
    split[rest] = stratified_group_split(y[rest], groups[rest], fractions, seed)
    return split, number


def make_splits(
    labels_csv: str | os.PathLike,
    out_splits: str | os.PathLike,
    out_counts: str | os.PathLike,
    method: str = "patient_random",
    fractions: dict[str, float] | None = None,
    seed: int = 42,
    train_val_list: str | os.PathLike | None = None,
    test_list: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    folds: int | None = None,
    fold: int | None = None,
    val_list: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Write ``splits.csv`` (image, patient, split; and fold for k-fold) and the per-split,
    per-class count table.

    ``method: patient_random`` splits all patients by ``fractions``; ``official`` uses the
    official ``test_list`` as the test split and carves ``val_fraction`` of the images of
    ``train_val_list`` out as validation, by patient (or takes ``val_list``'s, when the data
    set fixes them); ``patient_kfold`` makes fold ``fold`` of
    ``folds`` the test split and carves ``val_fraction`` of the other patients out as validation.
    """
    table, labels = read_labels(labels_csv)
    y = positives(table, labels)  # stratified on definite positives: the same for every policy
    number = None
    if method == "patient_kfold":
        if folds is None or fold is None:
            raise ValueError("method 'patient_kfold' needs folds and fold")
        groups = table["patient"].to_numpy()
        split, number = kfold_split(y, groups, folds, fold, val_fraction, seed)
    elif method == "patient_random":
        fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
        split = stratified_group_split(y, table["patient"].to_numpy(), fractions, seed)
    elif method == "official":
        if train_val_list is None or test_list is None:
            raise ValueError("method 'official' needs train_val_list and test_list")
        split = official_split(table, y, train_val_list, test_list, val_fraction, seed, val_list)
    else:
        raise ValueError(f"unknown split method {method!r}")
    out = pd.DataFrame({"image": table["image"], "patient": table["patient"], "split": split})
    if number is not None:
        out["fold"] = number
    out.to_csv(out_splits, index=False)
    counts = split_counts(table, out["split"], labels)
    counts.to_csv(out_counts)
    log.info("splits (%s):\n%s", method, counts.loc[["images", "patients"]].to_string())
    return out


def split_counts(table: pd.DataFrame, split: pd.Series, labels: list[str]) -> pd.DataFrame:
    """Rows: images, patients, each label; columns: per split count of positives and
    prevalence (% of the split's images)."""
    cols = {}
    pos = pd.DataFrame(positives(table, labels), columns=labels)
    for s in (*SPLITS, "all"):
        chosen = np.ones(len(table), bool) if s == "all" else split.to_numpy() == s
        sel = table[chosen]
        counts = {"images": len(sel), "patients": sel["patient"].nunique()}
        counts.update(pos[chosen].sum().astype(int).to_dict())
        cols[s] = pd.Series(counts)
    counts = pd.DataFrame(cols)
    for s in (*SPLITS, "all"):
        pct = 100 * counts.loc[labels, s] / max(counts.loc["images", s], 1)
        counts[f"{s}_%"] = pct.round(3)
        counts.loc[["images", "patients"], f"{s}_%"] = np.nan
    counts.index.name = "row"
    return counts
