"""Scoring image files (PNG, JPEG, DICOM) with a model bundle, as the pipeline scores its
store: the same decoding and resize (``imageio``; DICOM through ``cxr14.dicom``),
normalisation and network. A bad file is named with its reason in ``<out>_failures.csv``; the
other files are still scored. Outputs appear whole or not at all."""

from __future__ import annotations

import json
import logging
from contextlib import closing
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from cxr14.backends import cpu_threads, open_network, torch_threads
from cxr14.bundle import bundle_scorer, load_bundle
from cxr14.calibration import calibrate
from cxr14.dicom import decode_images, is_dicom
from cxr14.errors import DataError
from cxr14.files import replacing
from cxr14.gradcam import grad_cam
from cxr14.provenance import collect, sha256_file

log = logging.getLogger(__name__)

# File suffixes collected from folders, besides DICOM files found by content (PACS exports are
# often named IM0001, without a suffix); files named on the command line are always tried.
SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


def plot_prediction_cams(image: np.ndarray, findings: list[dict], title: str, out_png) -> None:
    """One image's top findings side by side, each with its Grad-CAM over the image.
    ``findings``: dicts with label, probability, threshold and cam (any size, [0, 1])."""
    fig = Figure(figsize=(3.4 * len(findings), 3.9), layout="constrained")
    axes = fig.subplots(1, len(findings), squeeze=False)
    extent = (0, image.shape[1], image.shape[0], 0)
    for ax, f in zip(axes[0], findings, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, extent=extent)
        ax.imshow(f["cam"], cmap="jet", alpha=0.35, extent=extent)
        call = "positive" if f["probability"] >= f["threshold"] else "negative"
        # As stored: 0.9998 must not read 1.000 beside a probability of 0.9997.
        ax.set_title(
            f"{f['label']}: {f['probability']:.6g}\n{call} at threshold {f['threshold']:.6g}",
            fontsize=9,
        )
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    with replacing(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def find_inputs(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files among ``inputs`` (files, and folders searched recursively, sorted: by
    suffix, and DICOM files by content), and (path, reason) for each input that does not
    exist."""
    files, missing = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = (p for p in item.rglob("*") if p.is_file())
            files += sorted(p for p in found if p.suffix.lower() in SUFFIXES or is_dicom(p))
        elif item.is_file():
            files.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return files, missing


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with replacing(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def _cam_name(path: str, taken: set[str]) -> str:
    name, n = f"{Path(path).stem}.png", 1
    while name in taken:  # same file name in two folders
        n += 1
        name = f"{Path(path).stem}_{n}.png"
    taken.add(name)
    return name


def write_cams(scorer, images, names, probs, thresholds, cam_dir, top=3, note="") -> list:
    """A Grad-CAM overlay PNG per image of its ``top`` most probable findings (``note``: a
    line under the model's name); their paths."""
    cam_dir = Path(cam_dir)
    cam_dir.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in cam_dir.glob("*.png")}
    x = scorer.normalize(torch.from_numpy(images).to(scorer.device))
    order = np.argsort(-probs, axis=1)[:, :top]
    cams = [
        grad_cam(scorer.model, scorer.cam_layer(), x, torch.as_tensor(order[:, r], device=x.device))
        .cpu()
        .numpy()
        for r in range(order.shape[1])
    ]
    out = []
    for i, name in enumerate(names):
        findings = [
            {
                "label": scorer.labels[k],
                "probability": float(probs[i, k]),
                "threshold": float(thresholds[k]),
                "cam": cams[r][i],
            }
            for r, k in enumerate(order[i])
        ]
        path = cam_dir / _cam_name(name, taken)
        plot_prediction_cams(images[i], findings, f"{name}\n{scorer.name}{note}", path)
        out.append(str(path))
    return out


def _prediction_rows(bundle: dict, names: list[str], probs: np.ndarray) -> pd.DataFrame:
    """One row per image: the data set the model was trained on (``trained_on``),
    ``prob_<class>`` (the network's), ``positive_<class>`` (at the bundle's Youden thresholds)
    and, when the bundle has a calibration, ``calibrated_<class>``."""
    labels, calibration = bundle["labels"], bundle["calibration"]
    part = pd.DataFrame({"image": names, "trained_on": trained_on(bundle)})
    part[[f"prob_{c}" for c in labels]] = probs
    part[[f"positive_{c}" for c in labels]] = (probs >= bundle["thresholds"]["youden"]).astype(int)
    if calibration:
        part[[f"calibrated_{c}" for c in labels]] = calibrate(probs, calibration)
    return part


def _batches(paths, pre: dict, batch_size: int, threads: int, prefetch: int, failures: list):
    """(names, images) per ``batch_size`` paths (images None where none could be read),
    decoded on ``threads`` threads at most ``prefetch`` batches ahead (0: each batch when it
    is needed, in this thread); the unreadable ones appended to ``failures``, in order."""
    window = prefetch * batch_size
    args = (pre["store_size"], pre["resample"], threads if window else 0)
    with closing(decode_images(paths, *args, window=window)) as decoded:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            names, images = [], []
            for path, (image, reason) in zip(chunk, islice(decoded, len(chunk)), strict=True):
                if image is None:
                    failures.append((str(path), reason))
                else:
                    names.append(str(path))
                    images.append(image)
            yield names, np.stack(images) if images else None


def score_files(
    bundle, paths, network, batch_size=32, cam_dir=None, threads=1, prefetch=2, device="auto"
) -> tuple[pd.DataFrame, list]:
    """Probabilities of every readable file by ``network`` (``cxr14.backends``), and (path,
    reason) of the others; with ``cam_dir``, a Grad-CAM overlay of each image's top findings
    there (by the PyTorch model on ``device``: gradients)."""
    failures, parts = [], []
    cams = cam_dir is not None and (network.scorer or bundle_scorer(bundle, device))
    note = f"\ntrained on {trained_on(bundle)}" if synthetic_warning(bundle) else ""
    n = -(-len(paths) // batch_size)
    batches = _batches(paths, bundle["preprocess"], batch_size, threads, prefetch, failures)
    with closing(batches):
        for names, images in tqdm(batches, total=n, desc="predict", unit="batch", disable=n < 2):
            if not names:
                continue
            probs = network.predict(images)
            part = _prediction_rows(bundle, names, probs)
            if cams:
                thresholds = bundle["thresholds"]["youden"]
                part["cam"] = write_cams(cams, images, names, probs, thresholds, cam_dir, 3, note)
            parts.append(part)
    empty = _prediction_rows(bundle, [], np.zeros((0, len(bundle["labels"]))))
    table = pd.concat(parts, ignore_index=True) if parts else empty
    return table, failures


def trained_on(bundle: dict) -> str:
    """The data set the bundle's model was trained on, in words ('unknown' if not recorded)."""
    return str(bundle["provenance"].get("dataset") or "unknown")


def synthetic_warning(bundle: dict) -> str:
    """What a user scoring real images must hear about the model's training data ('' for a
    model trained on real data): the data set's caveat (synthetic demo data)."""
    caveat = bundle["provenance"].get("caveat")
    if not caveat:
        return ""
    return (
        f"the model was trained on {trained_on(bundle)}: {caveat}, and its probabilities on "
        "real radiographs mean nothing"
    )


def _beside(out_csv, suffix: str) -> Path:
    """A file named after ``out_csv``, so that two predictions into one folder keep their own."""
    out_csv = Path(out_csv)
    return out_csv.with_name(f"{out_csv.stem}{suffix}")


def failures_path(out_csv) -> Path:
    """Where ``predict`` lists the inputs it did not score."""
    return _beside(out_csv, "_failures.csv")


def provenance_path(out_csv) -> Path:
    """Where ``predict`` records what made the predictions ``out_csv``."""
    return _beside(out_csv, "_provenance.json")


def prediction_record(model, sha256: str, bundle: dict, scored: dict) -> dict:
    """What made a prediction file: the bundle (its path and ``sha256``), the model's
    provenance as the bundle carries it (run, data set, training settings and the training's
    record) and the ``scored`` record of this prediction (code, environment, backend)."""
    return {
        "bundle": str(model),
        "bundle_sha256": sha256,
        "model": bundle["provenance"],
        "prediction": scored,
    }


def score_paths(
    model,
    bundle,
    paths,
    device="auto",
    batch_size=32,
    cam_dir=None,
    *,
    backend="auto",
    threads=None,
    onnx_file=None,
    prefetch=2,
) -> tuple[pd.DataFrame, list, dict]:
    """``score_files`` of ``paths`` with the bundle ``model`` (loaded: ``bundle``) on the
    network ``cxr14.backends.open_network`` opens; (table, failures, ``prediction_record``).
    ``threads`` (default: the CPUs this process may use) are the network's intra-op threads
    and the decoding threads, which work at most ``prefetch`` batches ahead of the network
    (0: decode each batch when it is needed)."""
    threads, digest = threads or cpu_threads(), sha256_file(model)
    with torch_threads(threads):
        args = (backend, device, threads, batch_size, onnx_file, digest)
        network = open_network(bundle, model, *args)
        log.info("scoring %d file(s) with %s, %d thread(s)", len(paths), network.where, threads)
        args = (batch_size, cam_dir, threads, prefetch, device)
        table, failures = score_files(bundle, paths, network, *args)
    scored = {**collect(), "backend": network.where, "threads": threads}
    return table, failures, prediction_record(model, digest, bundle, scored)


def write_record(record: dict, path) -> None:
    """A provenance record as JSON at ``path``, whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def predict(
    model,
    inputs,
    out_csv,
    device="auto",
    batch_size=32,
    cam_dir=None,
    **options,
) -> tuple[pd.DataFrame, list]:
    """Score ``inputs`` with the bundle ``model``; write ``out_csv`` (one row per image: the
    data set the model was trained on, the network's probabilities, per class positive at the
    bundle's Youden thresholds, the recalibrated probabilities (``calibrated_<class>``;
    not for a format-1 bundle); with ``cam_dir``, the path of its Grad-CAM overlay) and
    ``failures_path(out_csv)`` (every input not scored, with its reason) and
    ``provenance_path(out_csv)`` (``prediction_record``). No image among ``inputs`` is a
    DataError naming them.

    ``options``: ``score_paths``'s keywords (``backend``, ``threads``, ``onnx_file``,
    ``prefetch``)."""
    bundle = load_bundle(model)
    paths, failures = find_inputs(inputs)
    if not paths and not failures:
        names = ", ".join(map(str, inputs))
        raise DataError(f"no image (PNG, JPEG or DICOM) in {names}")
    if warning := synthetic_warning(bundle):
        log.warning("%s", warning)
    table, bad, record = score_paths(model, bundle, paths, device, batch_size, cam_dir, **options)
    failures += bad
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(table, out_csv)
    _write_csv(pd.DataFrame(failures, columns=["image", "reason"]), failures_path(out_csv))
    write_record(record, provenance_path(out_csv))
    for path, reason in failures:
        log.error("not scored: %s: %s", path, reason)
    log.info("%d image(s) scored into %s, %d not scored", len(table), out_csv, len(failures))
    return table, failures
