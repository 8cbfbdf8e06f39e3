"""The figure functions' choices: readable filters, distinct CAM examples, caveats in words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr14.checkpoint import conv_kernels, model_caveat
from cxr14.localization import cam_examples
from cxr14.models import build_model


def test_filter_figure_shows_only_kernels_that_are_images():
    state = build_model("densenet121", 14, weights="none").state_dict()
    layers = conv_kernels(state)[:6]
    assert len(layers) == 6
    assert all(min(shape[-2:]) >= 3 for _, shape, _ in layers)
    assert layers[0][:2] == ("features.conv0", (64, 1, 7, 7))  # the first layer is included
    kernels = layers[0][2]  # averaged over input channels, first 64 filters
    assert kernels.shape == (64, 7, 7)
    assert np.allclose(kernels, state["features.conv0.weight"].mean(dim=1).numpy())
    # densenet121's 1x1 bottleneck convolutions would have been 4 of the first 6 layers.
    all_convs = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    assert sum(min(state[k].shape[-2:]) == 1 for k in all_convs[:6]) >= 3


def test_cam_examples_are_distinct_images_covering_many_classes():
    boxes = pd.DataFrame(
        {
            "image": ["a", "a", "b", "b", "c", "d", "d", "e"],
            "label": ["Mass", "Nodule", "Mass", "Edema", "Mass", "Nodule", "Hernia", "Mass"],
        }
    )
    chosen = cam_examples(boxes, 4)
    assert len(chosen) == len(set(chosen["image"])) == 4
    assert {"Mass", "Edema", "Nodule"} <= set(chosen["label"])
    assert len(cam_examples(boxes, 10)) == 5  # only five distinct images exist


def test_a_frozen_random_backbone_is_named_a_linear_probe():
    frozen = {"config": {"arch": "resnet18", "freeze": "backbone"}, "weights_used": "none (x)"}
    assert "linear probe on random features" in model_caveat(frozen)
    tuned = {"config": {"freeze": "backbone"}, "weights_used": "/w/resnet18-f37072fd.pth"}
    scratch = {"config": {"arch": "vgg_like"}, "weights_used": "none (trained from scratch)"}
    assert model_caveat(tuned) == model_caveat(scratch) == ""


def test_figures_are_laid_out_so_labels_are_not_cut(tmp_path, monkeypatch):
    from cxr14 import figures
    from cxr14.layouts.nih import LABELS

    saved = []
    original = figures._save
    monkeypatch.setattr(
        figures, "_save", lambda fig, *a, **k: saved.append(fig) or original(fig, *a, **k)
    )
    row = {"model": "m", "mean_auroc": 0.8, **dict.fromkeys(LABELS, 0.8)}
    figures.plot_auroc_comparison(pd.DataFrame([row]), list(LABELS), "x", set(), tmp_path / "a.png")
    assert saved[0].get_layout_engine() is not None
    # The rotated class names fit: the axes leave room below them.
    assert saved[0].axes[0].get_position().y0 > 0.15


def test_filters_of_a_frozen_backbone_are_not_called_learned():
    from cxr14.figures import filters_title

    frozen = {"name": "r18", "freeze": "backbone", "caveat": ""}
    title = filters_title({**frozen, "weights_used": "/cache/resnet18-f37072fd.pth"}, 6)
    assert "NOT trained here" in title and "resnet18-f37072fd.pth" in title
    assert "learned" not in title
    trained = {"name": "vgg", "freeze": "none", "weights_used": "none", "caveat": ""}
    assert filters_title(trained, 6).startswith("vgg: learned filters")
