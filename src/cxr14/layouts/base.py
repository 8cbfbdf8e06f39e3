"""What a data-set layout provides. One subclass per layout; see docs/data.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# The columns of a published-results file before its per-label AUROCs; ``split_kind`` is
# ``official`` (the data set's own test list) or ``random`` (a split of the authors' own);
# ``views``: the views of its test images (``all``, or a comma-separated list).
PUBLISHED_COLUMNS = ("model", "source", "split", "split_kind", "test_set", "views")


def dataset_name(config: dict) -> str:
    """The name of the data set a configuration is about (``cxr14.settings.datasets`` puts
    it under ``dataset``; a configuration of one data set is named by its source)."""
    return config.get("dataset") or config["data"]["source"]


def views_phrase(config: dict) -> str:
    """How a result's data-set label names the views it kept (``data.views``)."""
    views = config["data"]["views"]
    return f"{' and '.join(views)} view{'s' if len(views) > 1 else ' only'}"


@dataclass(frozen=True)
class Wording:
    """How tables, captions and model cards speak of a data set: every data-set word in them
    comes from here, so a CheXpert run's report never mentions NIH."""

    # Whose labels the models learn and are scored against ("NIH's labels").
    labels: str = "the data set's labels"
    # What ``split.method: official`` uses.
    official_split: str = "the data set's official split"
    official_test: str = "the data set's official test images"
    # The model card's caveat about how the labels were made.
    label_note: str = ""
    # Where the expert re-reads come from (a citation), for layouts that have them.
    expert_source: str = ""


class Layout:
    """Everything the workflow knows about one data set's files.

    A layout names its classes (``labels``, in the order every table and model output uses),
    says where its files are under a configuration, and parses them into the project's tables:

    - ``read_metadata(path)``: one row per image with ``cxr14.metadata.META_COLUMNS`` and one
      0/1 column per label, sorted by image name;
    - ``locate_images(data_dir, table)``: each image's path relative to ``data_dir`` (NaN
      where it is not on disk), aligned with ``table`` (``read_metadata``'s);
    - ``read_boxes(path)``: expert boxes as ``image, label, x, y, w, h`` in ``box_space`` pixels;
    - ``read_expert_labels(path)``: expert re-reads as ``image, set_id`` and one 0/1 column per
      expert finding (layouts that have them).

    Only the data stages call these: they write ``labels.csv``, ``boxes.csv`` and
    ``expert_labels.csv`` in the project's own formats, and every later stage reads those
    (docs/data.md). The summary and model card take their words from ``wording``.
    """

    name: str = ""
    labels: tuple[str, ...] = ()
    # The data key naming the data set's release folder (`cxr14 evaluate --layout` sets it).
    folder_key: str = ""
    # The column of the harmonised findings table (``cxr14/findings.csv``) that holds these
    # labels: how a model trained on this data set is scored on another (``cxr14.findings``).
    vocabulary: str = "finding"
    # What every summary of a run on this layout must say about its results ("" for real
    # images of the data set the published numbers were measured on).
    results_caveat: str = ""
    # The data set of the published rows.
    published_dataset: str = ""
    # CSV of published per-class AUROCs: ``PUBLISHED_COLUMNS``, then one column per label.
    published_auroc_file: Path | None = None
    wording: Wording = Wording()
    # Where under the data folder the images are looked for (said when one is missing).
    image_places: str = ""
    # Whether labels can be uncertain (-1) or blank: then ``data.uncertain`` and ``data.blank``
    # apply (docs/data.md), and training and evaluation jobs carry them.
    uncertain_labels: bool = False
    # The view values ``read_metadata`` writes (``data.views`` picks among them).
    views: tuple[str, ...] = ()
    # What the store decodes (``cxr14.dicom.load_image``): PNG, JPEG, DICOM.
    image_formats: tuple[str, ...] = ("PNG",)
    # Whether the official split is in the metadata itself (``official_lists``; the parse
    # stage writes it as ``split_list_files``) rather than in list files of the data set.
    official_lists_in_metadata: bool = False
    # A synthetic copy the workflow writes itself (rule generate_synthetic_data) with the
    # ``generate`` function of module ``writer``; ``written_files`` are that rule's outputs.
    generated: bool = False
    writer: str = ""

    @property
    def comparable_to_published(self) -> bool:
        """Whether results can stand beside the published numbers."""
        return not self.results_caveat

    def data_dir(self, config: dict) -> str:
        """The folder the images are found under."""
        raise NotImplementedError

    def metadata_file(self, config: dict) -> str:
        raise NotImplementedError

    def parse_inputs(self, config: dict) -> dict[str, str]:
        """The files the parse step reads (its Snakemake inputs)."""
        return {"metadata": self.metadata_file(config)}

    def split_list_files(self, config: dict) -> dict[str, str]:
        """``train_val_list`` and ``test_list`` of the official split (one image name per
        line, ``cxr14.metadata.read_image_list``); where the split is in the metadata, the
        parse stage's files, with ``val_list`` (empty unless the data set fixes validation)."""
        if not self.official_lists_in_metadata:
            raise NotImplementedError
        keys = ("train_val_list", "test_list", "val_list")
        return {k: f"results/metadata/{dataset_name(config)}/{k}.txt" for k in keys}

    def official_lists(self, files: dict[str, str]) -> dict[str, list[str]]:
        """``train_val_list`` and ``test_list`` image names from the parse inputs ``files``,
        for layouts whose official split is in their metadata (``official_lists_in_metadata``)."""
        raise NotImplementedError

    def locate_images(self, data_dir, table: pd.DataFrame) -> pd.Series:
        """Each image's ``path`` (from ``read_metadata``) where that file exists under
        ``data_dir``, NaN otherwise; a layout that must search for its images overrides it."""
        exists = [os.path.isfile(os.path.join(data_dir, p)) for p in table["path"]]
        return table["path"].where(exists)

    def read_table(self, files: dict[str, str], **options) -> pd.DataFrame:
        """The image table from the parse inputs ``files`` (``parse_inputs``' keys) and the
        ``parse_options``: by default ``read_metadata(files["metadata"])``; a layout whose
        table joins several files (MIMIC-CXR: metadata, labels, patients) reads them all here."""
        return self.read_metadata(files["metadata"])

    def parse_options(self, config: dict) -> dict:
        """Settings the parse stage needs besides files (a manifest's label names): its
        params, so that changing them reparses."""
        return {}

    def bbox_file(self, config: dict) -> str | None:
        """The file of expert boxes, when this configuration has one (localisation and the
        Grad-CAM figure are planned only then)."""
        return None

    def box_space(self, config: dict) -> int:
        """Side of the square pixel space the expert boxes are given in."""
        raise NotImplementedError(f"layout {self.name!r} has no boxes")

    def written_files(self, config: dict) -> dict[str, str]:
        """What ``writer`` writes (a generated layout's rule outputs; ``images``-like keys
        are folders): ``metadata`` first, the folder it is in is the writer's ``out_dir``."""
        raise NotImplementedError(f"layout {self.name!r} is not generated by the workflow")

    def metadata_release(self, path, sha256: str | None = None) -> str:
        """Which known release a metadata file is (from its sha256, computed unless given,
        or failing that its format), or ``""`` when the layout knows none."""
        return ""

    def expert_labels_file(self, config: dict) -> str | None:
        """The file of expert re-read labels, when this configuration has one (the stage
        that scores models against them runs only then)."""
        return None

    def display_label(self, config: dict) -> str:
        """How every result of a run on this layout is labelled."""
        raise NotImplementedError

    def missing_paths(self, config: dict) -> list[str]:
        """What this configuration needs on disk and is not there (checked before any job
        runs); each entry names the path and the key that sets it."""
        return []

    def view_problems(self, config: dict) -> list[str]:
        """``data.views`` values this layout never writes (each would select nothing)."""
        return [
            f"data.views: {v!r} is not a view of the {self.name} layout "
            f"(its views: {', '.join(self.views)})"
            for v in config["data"]["views"]
            if v not in self.views
        ]

    def count_patients(self, config: dict) -> int | None:
        """Number of patients in the data set, from its metadata alone (None when unknown
        before the workflow runs); checks a cross-validation's fold count before any job."""
        return None

    def published_auroc(self) -> pd.DataFrame:
        """Published per-class AUROCs (empty when the layout has none)."""
        if self.published_auroc_file is None:
            return pd.DataFrame(columns=[*PUBLISHED_COLUMNS, *self.labels])
        return pd.read_csv(self.published_auroc_file)
