"""Data-set layouts: one module per layout, one entry per layout in LAYOUTS.

A layout knows where a data set's metadata, images, official split lists and expert boxes are,
how to parse them, its label list, its box pixel space, how its results are labelled and its
published baselines (``cxr14.layouts.base.Layout``). Only the data stages (parsing, splits,
boxes) and the workflow's file lookup use a layout; everything after the store reads the labels
from ``labels.csv`` or the checkpoint.
"""

from __future__ import annotations

from cxr14.layouts.base import Layout
from cxr14.layouts.chexpert import CheXpert, SyntheticCheXpert
from cxr14.layouts.manifest import Manifest, SyntheticManifest
from cxr14.layouts.mimic_cxr import MimicCXR, SyntheticMimicCXR
from cxr14.layouts.nih import NIH
from cxr14.layouts.synthetic import Synthetic

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        NIH(),
        CheXpert(),
        MimicCXR(),
        Manifest(),
        Synthetic(),
        SyntheticCheXpert(),
        SyntheticMimicCXR(),
        SyntheticManifest(),
    )
}


def generated_twice(layouts: dict[str, Layout]) -> list[str]:
    """Data sets (name -> layout) that are the same synthetic copy: the workflow writes each
    layout's copy into one folder, so two of them would overwrite each other."""
    first: dict[str, str] = {}
    problems = []
    for name, layout in layouts.items():
        if layout.generated and layout.name in first:
            problems.append(
                f"datasets.{name}: {layout.name} is also the source of data set "
                f"{first[layout.name]!r}; each synthetic copy can be one data set only"
            )
        first.setdefault(layout.name, name)
    return problems


def get_layout(name: str) -> Layout:
    """The layout registered as ``name`` (the config's ``data.source``)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown data layout {name!r}; known: {', '.join(LAYOUTS)}") from None
