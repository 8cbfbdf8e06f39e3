"""Scoring image files with a model bundle, as the pipeline scores its store: the same decoding
and resize (``imageio``), normalisation and network. A bad file is named with its reason in
``failures.csv``; the other files are still scored. Outputs appear whole or not at all."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cxr14.bundle import bundle_scorer, load_bundle
from cxr14.imageio import BadImage, load_gray

log = logging.getLogger(__name__)

# File suffixes collected from folders (files named on the command line are always tried).
SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")


def find_inputs(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files among ``inputs`` (files, and folders searched recursively, sorted),
    and (path, reason) for each input that does not exist."""
    files, missing = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = (p for p in item.rglob("*") if p.is_file())
            files += sorted(p for p in found if p.suffix.lower() in SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return files, missing


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, path)


def _decode(paths, size: int, resample: str, failures: list) -> tuple[list[str], np.ndarray]:
    names, images = [], []
    for p in paths:
        try:
            images.append(load_gray(p, size, resample, formats=FORMATS))
            names.append(str(p))
        except BadImage as exc:
            failures.append((str(p), exc.reason))
    return names, np.stack(images) if images else np.zeros((0, size, size), np.uint8)


def score_files(bundle, paths, device="auto", batch_size=32) -> tuple[pd.DataFrame, list]:
    """Probabilities of every readable file, and (path, reason) of the others."""
    scorer = bundle_scorer(bundle, device)
    pre, labels = bundle["preprocess"], bundle["labels"]
    thresholds = np.asarray(bundle["thresholds"]["youden"])
    failures, parts = [], []
    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for chunk in tqdm(chunks, desc="predict", unit="batch", disable=len(chunks) < 2):
        names, images = _decode(chunk, pre["store_size"], pre["resample"], failures)
        if not names:
            continue
        probs = scorer.predict(torch.from_numpy(images), batch_size)
        part = pd.DataFrame(probs, columns=[f"prob_{c}" for c in labels])
        part.insert(0, "image", names)
        positive = (probs >= thresholds).astype(int)
        part[[f"positive_{c}" for c in labels]] = positive
        parts.append(part)
    columns = ["image", *(f"prob_{c}" for c in labels), *(f"positive_{c}" for c in labels)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return table, failures


def predict(model, inputs, out_csv, device="auto", batch_size=32) -> tuple[pd.DataFrame, list]:
    """Score ``inputs`` with the bundle ``model``; write ``out_csv`` (one row per image: the
    probabilities and, per class, positive at the bundle's Youden thresholds) and
    ``failures.csv`` beside it (every input not scored, with its reason)."""
    bundle = load_bundle(model)
    paths, failures = find_inputs(inputs)
    table, bad = score_files(bundle, paths, device, batch_size)
    failures += bad
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(table, out_csv)
    _write_csv(pd.DataFrame(failures, columns=["image", "reason"]), out_csv.parent / "failures.csv")
    for path, reason in failures:
        log.error("not scored: %s: %s", path, reason)
    log.info("%d image(s) scored into %s, %d not scored", len(table), out_csv, len(failures))
    return table, failures
