"""External validation without the workflow (``cxr14 evaluate``): a model bundle scored on a
labelled set of one's own images, a CSV manifest (``cxr14.layouts.manifest``), or on a release
folder of a known data set (its layout), with the evaluation's own metrics.

Over the findings the bundle and the images share (a manifest's label columns named as the
model's classes or as their findings; a layout's labels through the harmonised findings,
``cxr14.findings``): AUROC, AP, calibration (as predicted and after the bundle's validation
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

from cxr14.bundle import load_bundle
from cxr14.calibration import subset_calibration
from cxr14.errors import DataError
from cxr14.evaluate import metrics_table
from cxr14.findings import FINDING, read_findings, shared_labels
from cxr14.layouts import LAYOUTS, get_layout
from cxr14.layouts.manifest import OPTIONAL, REQUIRED, read_manifest
from cxr14.metadata import label_targets, read_image_list
from cxr14.predict import score_paths, write_record
from cxr14.settings import default_config

log = logging.getLogger(__name__)
# The bundle's thresholds by the names metrics_table gives them.
THRESHOLDS = {"val": "youden", "sens": "at_sensitivity"}
# The layouts whose release folders `cxr14 evaluate --layout` reads.
FOLDER_LAYOUTS = [n for n, lay in LAYOUTS.items() if lay.folder_key and not lay.generated]


def _score(model, bundle: dict, table: pd.DataFrame, folder: Path, options: dict):
    """The manifest's images scored as ``cxr14 predict`` scores them (``score_paths`` and its
    keyword ``options``); (rows scored, their probabilities of every class, the failures by
    the manifest's path, the prediction record)."""
    paths = [str(folder / rel) for rel in table["path"]]
    scored, bad, record = score_paths(model, bundle, paths, **options)
    if scored.empty:
        raise DataError(f"no image of {folder} could be decoded ({len(bad)} failed)")
    failed, manifest_path = {p for p, _ in bad}, dict(zip(paths, table["path"], strict=True))
    rows = np.array([i for i, p in enumerate(paths) if p not in failed])
    failures = pd.DataFrame([(manifest_path[p], r) for p, r in bad], columns=["path", "reason"])
    return rows, scored[[f"prob_{c}" for c in bundle["labels"]]].to_numpy(), failures, record


def manifest_source(bundle: dict, manifest_csv) -> tuple[pd.DataFrame, Path, list]:
    """A manifest's images and the (class, column) pairs it shares with the model: columns
    named as the model's classes, or as the findings they are (``cxr14.findings``)."""
    meta = (*REQUIRED, *OPTIONAL)  # a manifest's columns that are not labels
    header = [c for c in pd.read_csv(manifest_csv, nrows=0).columns if c not in meta]
    pairs = [(c, c) for c in bundle["labels"] if c in header]
    vocabulary = bundle.get("vocabulary")
    if vocabulary:
        named = {c for c, _ in pairs}
        found = shared_labels(bundle["labels"], vocabulary, header, FINDING, read_findings())
        pairs += [(c, col) for c, col in found if c not in named and col not in named]
    if not pairs:
        raise DataError(
            f"{manifest_csv}: no column is a class of the model ({', '.join(bundle['labels'])})"
        )
    table = read_manifest(manifest_csv, [col for _, col in pairs])
    return table, Path(manifest_csv).parent, pairs


def layout_source(bundle: dict, layout: str, data_dir, split: str = "all"):
    """A data set folder of a known layout: its images (of the default views; ``split``:
    ``all``, or ``test``, its official test images), the folder, and the (class, label) pairs
    the model shares with it."""
    lay = get_layout(layout)
    if not lay.folder_key or lay.generated:
        known = ", ".join(FOLDER_LAYOUTS)
        raise DataError(f"cxr14 evaluate reads release folders of {known}, not {layout}")
    config = default_config()
    config["data"] |= {"source": layout, lay.folder_key: str(data_dir)}
    config["split"]["method"] = "official" if split == "test" else "patient_random"
    if problems := lay.missing_paths(config):
        raise DataError("; ".join(problems))
    files = lay.parse_inputs(config)
    table = lay.read_table(files, **lay.parse_options(config))
    table = table[table["view"].isin(config["data"]["views"])].reset_index(drop=True)
    if split == "test":
        table = table[table["image"].isin(_official_test(lay, config, files))]
    table = table.assign(path=lay.locate_images(lay.data_dir(config), table))
    vocabulary = bundle.get("vocabulary")
    if vocabulary:
        pairs = shared_labels(
            bundle["labels"], vocabulary, lay.labels, lay.vocabulary, read_findings()
        )
    else:  # a bundle from before models recorded their vocabulary: matched by name
        pairs = [(c, c) for c in bundle["labels"] if c in lay.labels]
    if not pairs:
        raise DataError(f"{data_dir}: no label of the {layout} layout is a class of the model")
    return table.reset_index(drop=True), Path(lay.data_dir(config)), pairs


def _official_test(lay, config: dict, files: dict) -> set[str]:
    if lay.official_lists_in_metadata:
        return set(lay.official_lists(files)["test_list"])
    return set(read_image_list(lay.split_list_files(config)["test_list"]))


def evaluate_external(
    model,
    manifest_csv=None,
    out_dir="external_validation",
    n_boot=1000,
    seed=0,
    device="auto",
    blank="negative",
    layout=None,
    data_dir=None,
    split="all",
    *,
    backend="auto",
    threads=None,
    batch_size=32,
) -> pd.DataFrame:
    """Score labelled images with the bundle ``model`` and write ``out_dir``/
    ``metrics.csv``, ``predictions.csv``, ``failures.csv`` (images that could not be read),
    ``report.md`` and ``provenance.json`` (``cxr14.predict.prediction_record``), over the
    classes the bundle and the data share. The images: a ``manifest_csv``
    (``manifest_source``), or the folder ``data_dir`` of a known ``layout``
    (``layout_source``), scored as ``cxr14 predict`` scores (``backend``, ``threads``,
    ``batch_size``: ``cxr14.predict.score_paths``). An uncertain label is never scored; a
    blank one is negative or unknown by ``blank``."""
    bundle = load_bundle(model)
    if manifest_csv:
        table, folder, pairs = manifest_source(bundle, manifest_csv)
        source = str(manifest_csv)
    else:
        table, folder, pairs = layout_source(bundle, layout, data_dir, split)
        source = f"{data_dir} ({layout} layout, {split} images)"
    missing = table["path"].isna()
    table, lost = table[~missing].reset_index(drop=True), table.loc[missing, "image"]
    options = dict(device=device, batch_size=batch_size, backend=backend, threads=threads)
    rows, p, failures, record = _score(model, bundle, table, folder, options)
    failures = pd.concat([failures, pd.DataFrame({"path": lost, "reason": "missing file"})])
    classes, columns = [c for c, _ in pairs], [bundle["labels"].index(c) for c, _ in pairs]
    p = p[:, columns]
    y = label_targets(table.loc[rows, [col for _, col in pairs]], "ignore", blank)
    y = y.astype(np.float64)
    t = bundle["thresholds"]
    thresholds = {k: np.array(t[key])[columns] for k, key in THRESHOLDS.items()}
    patients = table.loc[rows, "patient"].to_numpy()
    cal = subset_calibration(bundle["calibration"], columns)
    metrics = metrics_table(y, p, patients, thresholds, classes, n_boot, seed, cal)
    _write(out_dir, bundle, source, table.loc[rows], classes, y, p, metrics, failures)
    write_record({**record, "images": source}, Path(out_dir) / "provenance.json")
    return metrics


def _write(out_dir, bundle, source, table, shared, y, p, metrics, failures) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    pred = table[["image", "patient"]].reset_index(drop=True)
    pred[[f"prob_{c}" for c in shared]] = p
    pred[[f"label_{c}" for c in shared]] = y
    pred.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
    failures.to_csv(out / "failures.csv", index=False)
    (out / "report.md").write_text(_report(bundle, source, len(pred), shared, metrics))
    m = metrics.iloc[-1]
    log.info(
        "%d images of %s, %d shared classes: mean AUROC %.4f (95%% CI %.4f-%.4f); %s",
        len(pred),
        source,
        len(shared),
        m["auroc"],
        m["auroc_ci_low"],
        m["auroc_ci_high"],
        os.fspath(out / "report.md"),
    )


def _report(bundle: dict, source, n_images: int, shared, metrics: pd.DataFrame) -> str:
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
            f"- Scored on: {n_images} images of `{source}`; classes shared: {', '.join(shared)}.",
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
