"""A trained model as one self-contained file for inference (a *bundle*), and its model card.

A bundle is a dict of plain tensors and Python values (it loads with ``weights_only=True``):

- ``format``, ``version``: what the file is (``FORMAT``, ``VERSION``); other files are refused;
- ``arch``, ``model_settings``, ``state_dict``, ``labels``: the network and its output order;
- ``cam_layer``: the module path Grad-CAM reads, as in the pipeline's figures ('' or absent:
  the architecture's own layer);
- ``preprocess``: how an image becomes the network's input, exactly as in the pipeline: decode
  to 8-bit grayscale, antialiased PIL resize to ``store_size`` with ``resample``, subtract
  ``average`` (the average image), divide by ``std``, resize to ``input_size``;
- ``thresholds``: per class, chosen on the validation split (Youden's J, and the highest
  threshold reaching ``sensitivity`` there), on the network's own probabilities;
- ``calibration``: the recalibration fitted on the validation split (``cxr14.calibration``):
  ``method`` (``platt``, ``temperature`` or ``isotonic``), per class ``slopes`` and
  ``intercepts`` of the logit, or isotonic ``knots`` ([scores, values]), that turn the
  network's probabilities into calibrated ones (``calibration.calibrate``); a format-2 bundle
  holds ``temperatures`` instead, a format-1 bundle None;
- ``provenance``: run, split, seed, data set, training settings, package version, and the
  training's provenance ``record`` (``cxr14.provenance``: commit, uncommitted changes,
  resolved configuration, data files' and store's hashes, versions, device);
- ``test``: per class and mean, test AUROC with its patient-bootstrap 95% CI, and the
  expected calibration error before and after recalibration.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cxr14
from cxr14.calibration import fit_calibration, method_name
from cxr14.checkpoint import atomic_save
from cxr14.data import Normalizer
from cxr14.device import resolve_device
from cxr14.files import replacing
from cxr14.inference import Scorer
from cxr14.logs import CONSOLE
from cxr14.metrics import sensitivity_thresholds, youden_thresholds
from cxr14.models import build_model, model_settings
from cxr14.predictions import read_predictions

log = logging.getLogger(__name__)

FORMAT = "cxr14-model-bundle"
VERSION = 3
READABLE = (1, 2, 3)  # format 1: no calibration; format 2: temperatures only


class BundleError(ValueError):
    """A file is not a model bundle this version can read; the message says what it is."""


def _test_metrics(metrics_csv) -> dict:
    m = pd.read_csv(metrics_csv).set_index("label")
    cols = ["auroc", "auroc_ci_low", "auroc_ci_high", "n_pos", "n_neg", "ece", "ece_scaled"]
    return {label: {c: float(m.loc[label, c]) for c in cols} for label in m.index}


def build_bundle(
    scorer: Scorer, y_val, p_val, preprocess, provenance, test, sensitivity, calibration="platt"
) -> dict:
    """The bundle of a loaded model (see the module docstring), its thresholds and
    recalibration (method ``calibration``) chosen on the validation labels ``y_val`` and
    probabilities ``p_val``, as the evaluation chose them."""
    config = scorer.checkpoint["config"]
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": scorer.arch,
        "model_settings": model_settings(scorer.arch, config),
        "state_dict": {k: v.cpu() for k, v in scorer.model.state_dict().items()},
        "labels": scorer.labels,
        # The findings table column the labels are in (cxr14.findings; None: not recorded).
        "vocabulary": scorer.checkpoint.get("vocabulary"),
        # The layer the pipeline's Grad-CAM figures read ("": the architecture's own), so that
        # `cxr14 predict --cam` draws the same maps.
        "cam_layer": scorer.cam_layer_path,
        "preprocess": {
            **preprocess,
            "average": scorer.normalize.average[0, 0].cpu().clone(),
            "std": scorer.normalize.std,
            "input_size": scorer.normalize.input_size,
        },
        "thresholds": {
            "youden": youden_thresholds(y_val, p_val).tolist(),
            "sensitivity": float(sensitivity),
            "at_sensitivity": sensitivity_thresholds(y_val, p_val, sensitivity).tolist(),
        },
        "calibration": {
            **fit_calibration(y_val, p_val, calibration),
            "fitted_on": "validation",
        },
        "provenance": {
            **provenance,
            "settings": dict(config),
            "weights_used": scorer.checkpoint.get("weights_used", "unknown"),
            "best_epoch": scorer.checkpoint.get("best_epoch"),
            "cxr14_version": cxr14.__version__,
            # What the training ran from (cxr14.provenance; {}: trained before it was kept).
            "record": scorer.checkpoint.get("provenance") or {},
        },
        "test": test,
    }


def export_model(
    checkpoint,
    val_predictions,
    metrics_csv,
    out_bundle,
    out_card,
    preprocess: dict,
    provenance: dict,
    sensitivity: float = 0.9,
    cam_layer: str = "",
    calibration: str = "platt",
) -> dict:
    """Write the bundle of one trained model and its model card, from the evaluation's
    validation predictions and test metrics (nothing is scored again). ``preprocess`` holds
    the store's ``store_size`` and ``resample``; ``provenance`` the run, split, seed, data set
    (``dataset``), its caveat (``caveat``, empty for real data) and what its labels are
    (``label_note``, the layout's words for the card); ``cam_layer`` the layer
    the pipeline's Grad-CAM reads (``eval.cam_layers``; '': the architecture's own);
    ``calibration`` the recalibration method (``eval.calibration``)."""
    scorer = Scorer.load(checkpoint, device="cpu", cam_layer=cam_layer)
    y_val, p_val = read_predictions(val_predictions, scorer.labels)
    test = _test_metrics(metrics_csv)
    bundle = build_bundle(
        scorer, y_val, p_val, preprocess, provenance, test, sensitivity, calibration
    )
    atomic_save(bundle, out_bundle)
    with replacing(out_card) as tmp:
        tmp.write_text(model_card(bundle))
    log.info(
        "%s: bundle %s (test mean AUROC %.4f)",
        scorer.name,
        out_bundle,
        test["mean"]["auroc"],
        extra=CONSOLE,
    )
    return bundle


def load_bundle(path: str | os.PathLike) -> dict:
    """Read a bundle; anything else is refused with a BundleError saying what it is."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except Exception as exc:  # pickle, zip and torch errors alike: not a readable torch file
        # torch's own text advises weights_only=False, which a bundle never needs.
        raise BundleError(
            f"{path} is not a model bundle (not a readable PyTorch file: {type(exc).__name__})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        if isinstance(obj, dict) and {"model", "config"} <= set(obj):
            raise BundleError(
                f"{path} is a training checkpoint, not a model bundle: the workflow's "
                "export_model rule makes a bundle of it (results/models/<run>/bundle.pt)"
            )
        raise BundleError(f"{path} is not a cxr14 model bundle (no format {FORMAT!r})")
    if obj.get("version") not in READABLE:
        raise BundleError(
            f"{path} is a model bundle of format version {obj.get('version')}; cxr14 "
            f"{cxr14.__version__} reads versions {', '.join(map(str, READABLE))}"
        )
    obj.setdefault("calibration", None)
    return obj


def bundle_scorer(bundle: dict, device: str = "auto") -> Scorer:
    """The bundle's network and normalisation as a Scorer (eval mode, on ``device``)."""
    pre = bundle["preprocess"]
    # The state dict has the weights; a vision transformer is built for its input size.
    settings = {**bundle["model_settings"], "weights": "none", "input_size": pre["input_size"]}
    model = build_model(bundle["arch"], len(bundle["labels"]), **settings)
    model.load_state_dict(bundle["state_dict"])
    normalize = Normalizer(pre["average"].numpy(), pre["std"], pre["input_size"])
    dev = resolve_device(device)
    prov = bundle["provenance"]
    # What a Scorer reads of a checkpoint: the settings, the label order, the weights' origin.
    ckpt = {
        "config": prov["settings"],
        "labels": bundle["labels"],
        "weights_used": prov["weights_used"],
    }
    layer = bundle.get("cam_layer", "")  # bundles made before it was recorded: the arch's own
    return Scorer(model.to(dev).eval(), normalize.to(dev), dev, ckpt, layer)


def _auroc_ci(m: dict) -> str:
    """``0.812 (0.790-0.834)``, or ``0.812 (no CI)`` where the bootstrap gave none (too few
    positive patients) or the value is undefined."""
    low, high = m["auroc_ci_low"], m["auroc_ci_high"]
    ci = "no CI" if np.isnan(low) else f"{low:.3f}-{high:.3f}"
    return f"{m['auroc']:.3f} ({ci})"


def _recalibration_cell(cal: dict, k: int) -> str:
    if "slopes" in cal:
        return f"{cal['slopes'][k]:.3f}, {cal['intercepts'][k]:+.3f}"
    return f"isotonic, {len(cal['knots'][k][0])} knots"


def _card_rows(bundle: dict) -> list[str]:
    t, cal = bundle["thresholds"], bundle["calibration"]
    rows = []
    for k, label in enumerate(bundle["labels"]):
        m = bundle["test"].get(label)
        if m is None:  # a pooled model's finding its home test set does not label
            rows.append(f"| {label} | not labelled in the test set | | | | | |")
            continue
        rows.append(
            f"| {label} | {_auroc_ci(m)} "
            f"| {int(m['n_pos'])} | {t['youden'][k]:.4f} | {t['at_sensitivity'][k]:.4f} "
            f"| {_recalibration_cell(cal, k)} "
            f"| {m['ece']:.3f} -> {m['ece_scaled']:.3f} |"
        )
    return rows


def _fraction_note(settings: dict) -> str:
    """'; trained on 10% of the training labels' for a label-efficiency run, else ''."""
    fraction = settings.get("label_fraction", 1.0)
    return f"; trained on {fraction:.0%} of the training split's labels" if fraction < 1 else ""


def provenance_lines(bundle: dict) -> list[str]:
    """The model card's provenance section: what the training ran from and how to rebuild it
    (nothing for a model trained before records were kept)."""
    record = bundle["provenance"].get("record") or {}
    if not record:
        return []
    git, env = record["git"], record["environment"]
    tree = "with uncommitted changes" if git["dirty"] else "clean"
    if git["dirty"]:
        tree += f" (diff sha256 {git['diff_sha256'][:16]})"
    data = [
        f"- Data `{name}` ({d['layout']}): "
        + ", ".join(f"`{Path(f).name}` sha256 {h[:16]}" for f, h in d["metadata"].items())
        + f"; store sha256 {(d['store_sha256'] or 'not recorded')[:16]}."
        for name, d in (record.get("data") or {}).items()
    ]
    return [
        "## Provenance",
        "",
        f"- Code: cxr14 {record['cxr14_version']}, commit {git['commit'] or 'unknown'}, {tree}.",
        f"- Configuration: sha256 {(record['config_sha256'] or 'not recorded')[:16]}; "
        "`cxr14 provenance --model bundle.pt --config config.yaml` writes it out, with the "
        "commands that rebuild this model.",
        *data,
        f"- Environment: Python {env['python']}, torch {env['torch']}, torchvision "
        f"{env['torchvision']}, CUDA {env['cuda'] or 'none'}, device {env['device']}.",
        "",
    ]


def model_card(bundle: dict) -> str:
    """A short Markdown model card of a bundle of this format: data, split, metrics with
    CIs, thresholds, temperatures, intended use and known limits. A model not trained on real
    data says so in its first line."""
    prov, pre, mean = bundle["provenance"], bundle["preprocess"], bundle["test"]["mean"]
    caveat = prov.get("caveat", "")
    first = f"**Not a real-data model: {caveat}.**" if caveat else "**Research use only.**"
    sens = bundle["thresholds"]["sensitivity"]
    return "\n".join(
        [
            first,
            "",
            f"# Model card: {prov['run']} ({bundle['arch']})",
            "",
            f"- Data: {prov['dataset']}; split `{prov['split']}` ({prov['split_method']}), "
            f"seed {prov['seed']}; best epoch {prov['best_epoch']}; weights: "
            f"{prov['weights_used']}{_fraction_note(prov.get('settings', {}))}.",
            f"- Input: grayscale, resized to {pre['store_size']}x{pre['store_size']} "
            f"({pre['resample']}), minus the training average image, divided by "
            f"{pre['std']:.2f}, resized to {pre['input_size']}x{pre['input_size']}.",
            f"- Test mean AUROC {_auroc_ci(mean)}: 95% CI from a patient bootstrap; "
            f"{int(mean['n_pos'])} positive image-label pairs.",
            f"- Calibration: {method_name(bundle['calibration']['method'])}, fitted on the "
            "validation split; `cxr14 predict` writes the recalibrated probabilities as "
            f"`calibrated_<class>` (test mean ECE {mean['ece']:.3f} -> "
            f"{mean['ece_scaled']:.3f}).",
            f"- Made by cxr14 {prov['cxr14_version']}.",
            "",
            f"| class | test AUROC (95% CI) | test positives | threshold (Youden, validation) "
            f"| threshold (sensitivity {sens:g}, validation) | logit slope, intercept "
            "(validation) "
            "| test ECE -> after recalibration |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *_card_rows(bundle),
            "",
            *provenance_lines(bundle),
            "## Intended use",
            "",
            "Research on chest X-ray classification methods. Not a medical device and not for "
            "diagnosis or any clinical decision.",
            "",
            "## Known limits",
            "",
            "- "
            + (
                prov.get("label_note")
                or "Test AUROCs measure agreement with the data set's labels, however made."
            ),
            "- Thresholds were chosen on the validation split of the same data set; on other "
            "hospitals, scanners or populations both the AUROC and the thresholds may not hold.",
            "- Frontal radiographs of the training data set's kind only.",
            "- `prob_<class>` are the network's own probabilities (the weighted loss inflates "
            "them); `calibrated_<class>` are recalibrated to the validation split's "
            "prevalence, which another population need not share. Thresholds apply to "
            "`prob_<class>`.",
            "",
        ]
    )
