"""The figure functions' choices: readable filters, distinct CAM examples, caveats in words."""

from __future__ import annotations

import pandas as pd

from cxr14.checkpoint import model_caveat
from cxr14.figures import cam_examples, filter_layers
from cxr14.models import build_model


def test_filter_figure_shows_only_kernels_that_are_images():
    state = build_model("densenet121", 14, weights="none").state_dict()
    layers = filter_layers(state, 6)
    assert len(layers) == 6
    assert all(min(w.shape[-2:]) >= 3 for _, w in layers)
    assert layers[0][0] == "features.conv0"  # the first layer (7x7) is included
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

    frozen = {"config": {"arch": "resnet18", "run": "r18", "freeze": "backbone"}}
    title = filters_title({**frozen, "weights_used": "/cache/resnet18-f37072fd.pth"}, 6)
    assert "NOT trained here" in title and "resnet18-f37072fd.pth" in title
    assert "learned" not in title
    trained = {"config": {"arch": "vgg_like", "run": "vgg"}, "weights_used": "none"}
    assert filters_title(trained, 6).startswith("vgg: learned filters")
