"""External validation without the workflow (``cxr14 evaluate``): a model bundle scored on a
labelled set of one's own images, a CSV manifest (``cxr14.layouts.manifest``), with the
evaluation's own metrics.

Over the classes the bundle and the manifest share (its label columns named as the model's
classes): AUROC, AP, calibration (as predicted and after the bundle's validation
recalibration) and the operating points at the bundle's validation thresholds, with
patient-bootstrap 95% CIs (``cxr14.evaluate.metrics_table``). This is how a hospital checks a
published model on its own labelled images before trusting it: the thresholds and the
recalibration were chosen on the model's own validation split, and another population's
prevalence and scanners need not fit them; the report says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxr14.bundle import bundle_scorer, load_bundle
from cxr14.calibration import subset_calibration
from cxr14.dicom import load_image
from cxr14.errors import DataError
from cxr14.evaluate import metrics_table
from cxr14.imageio import BadImage
from cxr14.layouts.manifest import read_manifest
from cxr14.metadata import label_targets

log = logging.getLogger(__name__)


def _decode(table: pd.DataFrame, folder: Path, pre: dict):
    """The manifest's images as the pipeline decodes them; (rows decoded, images, failures)."""
    rows, images, failures = [], [], []
    for i, rel in enumerate(table["path"]):
        try:
            images.append(load_image(folder / rel, pre["store_size"], pre["resample"]))
            rows.append(i)
        except BadImage as exc:
            failures.append({"path": rel, "reason": exc.reason})
    if not images:
        raise DataError(f"no image of {folder} could be decoded ({len(failures)} failed)")
    return np.array(rows), np.stack(images), pd.DataFrame(failures, columns=["path", "reason"])


def evaluate_external(
    model, manifest_csv, out_dir, n_boot=1000, seed=0, device="auto", blank="negative"
) -> pd.DataFrame:
    """Score the manifest's images with the bundle ``model`` and write ``out_dir``/
    ``metrics.csv``, ``predictions.csv``, ``failures.csv`` and ``report.md``. An uncertain
    label is never scored; a blank one is negative or unknown by ``blank``."""
    bundle = load_bundle(model)
    header = pd.read_csv(manifest_csv, nrows=0).columns
    shared = [c for c in bundle["labels"] if c in header]
    if not shared:
        raise DataError(
            f"{manifest_csv}: no column is a class of the model ({', '.join(bundle['labels'])})"
        )
    table = read_manifest(manifest_csv, shared)
    rows, images, failures = _decode(table, Path(manifest_csv).parent, bundle["preprocess"])
    probs = bundle_scorer(bundle, device).predict(torch.from_numpy(images))
    columns = [bundle["labels"].index(c) for c in shared]
    p = probs[:, columns]
    y = label_targets(table.loc[rows, shared], "ignore", blank).astype(np.float64)
    t = bundle["thresholds"]
    thresholds = {
        "val": np.array(t["youden"])[columns],
        "sens": np.array(t["at_sensitivity"])[columns],
    }
    patients = table.loc[rows, "patient"].to_numpy()
    cal = subset_calibration(bundle["calibration"], columns)
    metrics = metrics_table(y, p, patients, thresholds, shared, n_boot, seed, cal)
    _write(out_dir, bundle, manifest_csv, table.loc[rows], shared, y, p, metrics, failures)
    return metrics


def _write(out_dir, bundle, manifest_csv, table, shared, y, p, metrics, failures) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    pred = table[["image", "patient"]].reset_index(drop=True)
    pred[[f"prob_{c}" for c in shared]] = p
    pred[[f"label_{c}" for c in shared]] = y
    pred.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
    failures.to_csv(out / "failures.csv", index=False)
    (out / "report.md").write_text(_report(bundle, manifest_csv, len(pred), shared, metrics))
    m = metrics.iloc[-1]
    log.info(
        "%d images of %s, %d shared classes: mean AUROC %.4f (95%% CI %.4f-%.4f); %s",
        len(pred),
        manifest_csv,
        len(shared),
        m["auroc"],
        m["auroc_ci_low"],
        m["auroc_ci_high"],
        os.fspath(out / "report.md"),
    )


def _report(bundle: dict, manifest_csv, n_images: int, shared, metrics: pd.DataFrame) -> str:
    prov, m = bundle["provenance"], metrics.set_index("label")
    rows = [
        f"| {c} | {m.loc[c, 'auroc']:.3f} ({m.loc[c, 'auroc_ci_low']:.3f}-"
        f"{m.loc[c, 'auroc_ci_high']:.3f}) | {int(m.loc[c, 'n_pos'])} | "
        f"{m.loc[c, 'recall_at_val']:.3f} | {m.loc[c, 'specificity_at_val']:.3f} |"
        for c in shared
    ]
    caveat = prov.get("caveat")
    return "\n".join(
        [
            f"# External validation of {prov.get('run', 'a model')} ({bundle['arch']})",
            "",
            *([f"**The model is not a real-data model: {caveat}.**", ""] if caveat else []),
            f"- Model trained on: {prov.get('dataset', 'unknown')}.",
            f"- Scored on: {n_images} images of `{manifest_csv}`; classes shared: "
            f"{', '.join(shared)}.",
            f"- Mean AUROC {m.loc['mean', 'auroc']:.3f} (95% CI {m.loc['mean', 'auroc_ci_low']:.3f}"
            f"-{m.loc['mean', 'auroc_ci_high']:.3f}, patient bootstrap).",
            "- Sensitivity and specificity are at the model's own validation thresholds "
            "(Youden): another population's prevalence and scanners need not fit them.",
            "",
            "| class | AUROC (95% CI) | positives | sensitivity | specificity |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
