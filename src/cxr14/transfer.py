"""The transfer matrix: every run scored on every data set's test split, on one scale.

A cell is one run on one test set: its mean AUROC over the findings the run's model and the
test set share, with the 95% CI that combines its training seeds and the test patients
(``metrics.hierarchical_interval``), the number of those findings and each one's AUROC (columns
named by the harmonised findings, ``cxr14.findings``). As cells share different findings, each
also gets the mean over the findings *every* cell shares (``auroc_common``): the number the
heat map shows, comparable across the whole matrix.

The drop of a run from a data set it was trained on (in-domain) to one it was not (external) is
the difference of its mean AUROCs over the findings both cells share, with a bootstrap CI that
draws the same training seeds for both sets (the same models) and each set's patients
independently (they are different people): a CI above zero is a drop beyond chance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxr14.findings import read_findings, to_findings
from cxr14.logs import CONSOLE
from cxr14.metrics import cross_set_difference, hierarchical_interval, stack_auroc
from cxr14.predictions import aligned_runs, pool_seeds

log = logging.getLogger(__name__)
# The columns of transfer_drops.csv.
DROP_COLUMNS = [
    "run",
    "train_on",
    "in_domain_set",
    "external_set",
    "n_findings",
    "findings",
    "drop",
    "drop_ci_low",
    "drop_ci_high",
]


class Cell:
    """One run's predictions on one test set: labels y (n, C), the stack of its replicates'
    probabilities (S, n, C), patients, folds, and its classes as findings."""

    def __init__(self, spec: dict, files: Sequence[str], findings: pd.DataFrame):
        self.run, self.test_set = spec["run"], spec["test_set"]
        self.train_on = list(spec["train_on"])
        pooled = pool_seeds(self.run, files, spec["seeds"])
        y, stack, _, groups, labels, folds = aligned_runs(self.run, self.run, pooled, pooled)
        self.y, self.stack, self.groups = y.astype(float), stack, groups
        self.folds = folds if len(np.unique(folds)) > 1 else None
        names = to_findings(labels, spec["vocabulary"], findings)
        self.findings = [names[c] for c in labels]

    @property
    def in_domain(self) -> bool:
        return self.test_set in self.train_on

    def columns(self, findings: Sequence[str]) -> list[int]:
        return [self.findings.index(f) for f in findings]

    def auroc(self, findings, n_boot: int, seed: int) -> tuple[float, float, float]:
        """Mean AUROC over ``findings`` and its seed-and-patient 95% CI."""
        cols = self.columns(findings)
        if not cols:
            return np.nan, np.nan, np.nan
        y, stack = self.y[:, cols], self.stack[:, :, cols]
        _, mean = stack_auroc(y, stack, self.folds)
        low, high = hierarchical_interval(y, stack, self.groups, self.folds, n_boot, seed)
        return mean, low[-1], high[-1]

    def part(self, findings) -> tuple:
        """(y, stack, patients, folds) over ``findings``: what ``cross_set_difference`` takes."""
        cols = self.columns(findings)
        return self.y[:, cols], self.stack[:, :, cols], self.groups, self.folds


def cell_row(cell: Cell, common: list[str], n_boot: int, seed: int) -> dict:
    mean, low, high = cell.auroc(cell.findings, n_boot, seed)
    c_mean, c_low, c_high = cell.auroc(common, n_boot, seed)
    per_finding, _ = stack_auroc(cell.y, cell.stack, cell.folds)
    row = {
        "run": cell.run,
        "train_on": "+".join(cell.train_on),
        "test_set": cell.test_set,
        "in_domain": cell.in_domain,
        "n_findings": len(cell.findings),
        "auroc": mean,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "n_common": len(common),
        "auroc_common": c_mean,
        "auroc_common_ci_low": c_low,
        "auroc_common_ci_high": c_high,
    }
    return row | {f"auroc_{f}": v for f, v in zip(cell.findings, per_finding, strict=True)}


def drop_row(inside: Cell, outside: Cell, n_boot: int, seed: int) -> dict:
    """In-domain minus external mean AUROC of one run over the findings both cells share,
    with its bootstrap CI (``metrics.cross_set_difference``)."""
    shared = [f for f in inside.findings if f in outside.findings]
    value, low, high = np.nan, np.nan, np.nan
    if shared:
        parts = (inside.part(shared), outside.part(shared))
        value, low, high = cross_set_difference(*parts, n_boot, seed)
    return {
        "run": inside.run,
        "train_on": "+".join(inside.train_on),
        "in_domain_set": inside.test_set,
        "external_set": outside.test_set,
        "n_findings": len(shared),
        "findings": "; ".join(shared),
        "drop": value,
        "drop_ci_low": low,
        "drop_ci_high": high,
    }


def transfer_matrix(
    cells: Sequence[dict],
    predictions: Sequence[str],
    out_csv,
    out_drops,
    out_png,
    findings_csv=None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Write the matrix (one row per run and test set: ``cell_row``), the in-domain to
    external drops (``drop_row``) and the heat map. ``cells``: per run and test set its
    ``run``, ``test_set``, ``train_on``, the ``vocabulary`` of its classes, the ``seeds`` of
    its prediction files; ``predictions``: those files, cell after cell."""
    findings = read_findings(findings_csv)
    built, start = [], 0
    for spec in cells:
        n = len(spec["seeds"])
        built.append(Cell(spec, predictions[start : start + n], findings))
        start += n
    common = [f for f in built[0].findings if all(f in c.findings for c in built)]
    table = pd.DataFrame([cell_row(c, common, n_boot, seed) for c in built])
    table.to_csv(out_csv, index=False, float_format="%.4f")
    drops = [
        drop_row(a, b, n_boot, seed)
        for a in built
        for b in built
        if a.run == b.run and a.in_domain and not b.in_domain
    ]
    drops = pd.DataFrame(drops, columns=DROP_COLUMNS)
    drops.to_csv(out_drops, index=False, float_format="%.4f")
    from cxr14.figures import plot_transfer  # matplotlib only where the figure is drawn

    plot_transfer(table, out_png)
    for _, d in drops.iterrows():
        log.info(
            "%s: %s -> %s mean AUROC drop %.4f (95%% CI %.4f-%.4f) over %d findings",
            d["run"],
            d["in_domain_set"],
            d["external_set"],
            d["drop"],
            d["drop_ci_low"],
            d["drop_ci_high"],
            d["n_findings"],
            extra=CONSOLE,
        )
    return table
