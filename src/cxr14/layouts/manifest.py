"""Your own images: a CSV manifest (``data.source: manifest``, ``data.manifest_csv``).

One row per image. Columns: ``path`` (relative to the CSV's folder; PNG 8/16-bit, JPEG or
DICOM), ``patient``; optional ``study``, ``view``, ``sex`` (M/F, or male/female), ``age``
(years), ``split`` (``train``/``val``/``test``: with ``split.method: official`` these are the
splits); then one column per label named in ``data.labels``, valued 1/0, or -1 (uncertain) /
blank (unknown or not mentioned; ``data.uncertain``, ``data.blank``). Other columns are ignored.
Optional files in the project's own formats: expert boxes (``data.manifest_boxes_csv``:
``image, label, x, y, w, h`` as fractions of the image's width and height, ``image`` being the
manifest's ``path``) and expert re-read labels (``data.manifest_expert_csv``: ``image``,
``set_id`` and one 0/1 column per expert finding). Every error names the file, its line and the
column.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.layouts.base import Layout, Wording, views_phrase
from cxr14.layouts.synthetic import Generated
from cxr14.metadata import csv_line, parse_label_cells, read_text_csv

REQUIRED = ("path", "patient")
OPTIONAL = ("study", "view", "sex", "age", "split")
SPLIT_VALUES = ("train", "val", "test")
SEX = {"M": "M", "F": "F", "MALE": "M", "FEMALE": "F", "": ""}


def image_id(path: str) -> str:
    """An image's name in every table: its manifest path, folders joined by ``__``."""
    return path.replace("/", "__")


def _fail(path, idx, column: str, why: str):
    raise DataError(f"{path}, line {csv_line(idx)}, column {column!r}: {why}")


def _paths(raw: pd.DataFrame, csv) -> pd.Series:
    """Normalised relative paths; an empty, absolute or escaping one is refused."""
    out = raw["path"].str.strip().str.replace("\\", "/", regex=False)
    for idx, p in out.items():
        norm = posixpath.normpath(p) if p else ""
        if not p or p.startswith("/") or norm.startswith("..") or ":" in p.split("/")[0]:
            _fail(csv, idx, "path", f"{p!r} is empty or not inside the manifest's folder")
        out[idx] = norm
    twice = out.duplicated()
    if twice.any():
        idx = twice.idxmax()
        first = csv_line(out[out == out[idx]].index[0])
        _fail(csv, idx, "path", f"image {out[idx]!r} listed twice (also line {first})")
    return out


def _patients(raw: pd.DataFrame, csv) -> pd.Series:
    """Patient ids as integers: numbers kept, other ids numbered in order of appearance."""
    ids = raw["patient"].str.strip()
    if ids.eq("").any():
        _fail(csv, ids.eq("").idxmax(), "patient", "empty")
    numeric = pd.to_numeric(ids, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.astype(np.int64)
    return pd.Series(pd.factorize(ids)[0] + 1, index=raw.index, dtype=np.int64)


def _optional(raw: pd.DataFrame, csv) -> dict[str, pd.Series]:
    """study, view, sex and age (defaults where a column is absent), checked."""
    col = {c: raw[c].str.strip() if c in raw else pd.Series("", index=raw.index) for c in raw}
    for c in OPTIONAL:
        col.setdefault(c, pd.Series("", index=raw.index))
    study = pd.to_numeric(col["study"].replace("", "0"), errors="coerce")
    sex = col["sex"].str.upper().map(SEX)
    age = pd.to_numeric(col["age"], errors="coerce")
    checks = (
        ("study", study.isna(), "not a whole number"),
        ("sex", sex.isna(), "none of M, F, male, female or blank"),
        ("age", age.isna() & col["age"].ne(""), "not a number of years"),
        ("split", ~col["split"].isin((*SPLIT_VALUES, "")), "none of train, val, test or blank"),
    )
    for name, bad, why in checks:
        if bad.any():
            idx = bad.idxmax()
            _fail(csv, idx, name, f"{raw[name][idx]!r} is {why}")
    view = col["view"].replace("", "unknown")
    return {"study": study.astype(np.int64), "view": view, "sex": sex, "age": age}


def read_manifest(csv, labels) -> pd.DataFrame:
    """The manifest as the project's image table (``META_COLUMNS``, ``path`` relative to the
    CSV's folder, ``split`` as given, then ``labels``' raw values), sorted by image name."""
    raw = read_text_csv(csv)
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw]
    absent = [c for c in labels if c not in raw]
    if missing or absent:
        what = f"missing column(s) {', '.join(map(repr, missing + absent))}"
        hint = f" (data.labels names {', '.join(map(repr, absent))})" if absent else ""
        raise DataError(f"{csv}: {what}{hint}; found {', '.join(map(repr, raw.columns))}")
    if raw.empty:
        raise DataError(f"{csv}: no data rows")
    paths = _paths(raw, csv)
    extra = _optional(raw, csv)
    table = pd.DataFrame({"image": paths.map(image_id), "patient": _patients(raw, csv)})
    table["follow_up"] = extra["study"]
    table["view"], table["age_years"], table["sex"] = extra["view"], extra["age"], extra["sex"]
    table["path"] = paths
    table["split"] = raw["split"].str.strip() if "split" in raw else ""
    table[list(labels)] = parse_label_cells(raw, labels, csv, csv_line)
    _check_fixed_splits(table["split"], raw["patient"].str.strip(), csv)
    return table.sort_values("image", kind="stable").reset_index(drop=True)


def _check_fixed_splits(split: pd.Series, patient: pd.Series, csv) -> None:
    """Either every row fixes its split or none does; a patient's rows are in one split."""
    given = split.ne("")
    if given.any() and not given.all():
        _fail(csv, (~given).idxmax(), "split", "blank, but other rows fix their split")
    per_patient = split[given].groupby(patient[given]).nunique()
    if (per_patient > 1).any():
        leaked = per_patient.idxmax()
        rows = patient.index[patient == leaked]
        _fail(csv, rows[-1], "split", f"patient {leaked!r} is in two splits (a leak)")


class Manifest(Layout):
    """A user's CSV manifest at ``data.manifest_csv``; labels ``data.labels``."""

    name = "manifest"
    uncertain_labels = True
    image_formats = ("PNG", "JPEG", "DICOM")
    image_places = "the manifest's paths, relative to its folder"
    official_lists_in_metadata = True
    wording = Wording(
        labels="the manifest's labels",
        official_split="the manifest's own split column",
        official_test="the manifest's test rows",
    )

    def parse_options(self, config: dict) -> dict:
        return {"labels": list(config["data"]["labels"])}

    def data_dir(self, config: dict) -> str:
        return str(Path(config["data"]["manifest_csv"]).parent)

    def metadata_file(self, config: dict) -> str:
        return config["data"]["manifest_csv"]

    def parse_inputs(self, config: dict) -> dict[str, str]:
        return {"metadata": self.metadata_file(config)}

    def missing_paths(self, config: dict) -> list[str]:
        files = [("data.manifest_csv", config["data"]["manifest_csv"])]
        files += [(k, config["data"][k.split(".")[1]]) for k in self._extra_keys(config)]
        missing = [f"{key}: file {p} does not exist" for key, p in files if not Path(p).is_file()]
        if not config["data"]["labels"]:
            missing.append("data.labels: a manifest needs the names of its label columns")
        return missing

    @staticmethod
    def _extra_keys(config: dict) -> list[str]:
        keys = ("data.manifest_boxes_csv", "data.manifest_expert_csv")
        return [k for k in keys if config["data"][k.split(".")[1]]]

    def view_problems(self, config: dict) -> list[str]:
        return []  # the manifest's own view values

    def bbox_file(self, config: dict) -> str | None:
        return config["data"]["manifest_boxes_csv"] or None

    def box_space(self, config: dict) -> int:
        return 1  # fractions of the image's sides

    def expert_labels_file(self, config: dict) -> str | None:
        return config["data"]["manifest_expert_csv"] or None

    def display_label(self, config: dict) -> str:
        name = Path(config["data"]["manifest_csv"]).name
        return f"the images of {name}, {views_phrase(config)}, {config['split']['method']} split"

    def count_patients(self, config: dict) -> int | None:
        csv = config["data"]["manifest_csv"]
        return int(pd.read_csv(csv, usecols=["patient"], dtype=str)["patient"].nunique())

    def read_table(self, files: dict[str, str], labels=()) -> pd.DataFrame:
        return read_manifest(files["metadata"], labels).drop(columns="split")

    def official_lists(self, files: dict[str, str]) -> dict[str, list[str]]:
        table = read_manifest(files["metadata"], ())
        if table["split"].eq("").all():
            raise DataError(f"{files['metadata']}: split.method official needs a split column")
        names = {s: table.loc[table["split"] == s, "image"].tolist() for s in SPLIT_VALUES}
        lists = {"train_val_list": sorted(names["train"] + names["val"])}
        return lists | {"test_list": names["test"], "val_list": names["val"]}

    def read_boxes(self, path) -> pd.DataFrame:
        return read_own_table(path, ("image", "label", "x", "y", "w", "h"))

    def read_expert_labels(self, path) -> pd.DataFrame:
        return read_own_table(path, ("image", "set_id"))


def read_own_table(path, columns) -> pd.DataFrame:
    """A box or expert-label file in the project's own format, its ``image`` column holding
    manifest paths (turned into image names)."""
    table = pd.read_csv(path, dtype={"image": str, "label": str, "set_id": str})
    missing = [c for c in columns if c not in table]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    table["image"] = table["image"].map(lambda p: image_id(posixpath.normpath(p)))
    return table


class SyntheticManifest(Generated, Manifest):
    """The synthetic demo set as a manifest of PNG (8 and 16 bit), JPEG and DICOM files
    (``cxr14.synthetic_manifest``) with boxes, in results/synthetic_manifest."""

    name = "synthetic_manifest"
    results_caveat = "results on the synthetic demo set are never results on real images"
    writer = "cxr14.synthetic_manifest"
    DIR = "results/synthetic_manifest"
    # Its own label names (a user's manifest names its own): read off planted findings.
    labels = ("cardiomegaly", "effusion", "pneumothorax", "nodule_or_mass", "opacity")

    def parse_options(self, config: dict) -> dict:
        return {"labels": list(self.labels)}

    def metadata_file(self, config: dict) -> str:
        return f"{self.DIR}/manifest.csv"

    def written_files(self, config: dict) -> dict[str, str]:
        files = {"metadata": "manifest.csv", "boxes": "boxes.csv", "images": "images"}
        return {k: f"{self.DIR}/{f}" for k, f in files.items()}

    def parse_inputs(self, config: dict) -> dict[str, str]:
        return {"metadata": self.metadata_file(config), "images": f"{self.DIR}/images"}

    def bbox_file(self, config: dict) -> str | None:
        return f"{self.DIR}/boxes.csv"

    def expert_labels_file(self, config: dict) -> str | None:
        return None

    def display_label(self, config: dict) -> str:
        return f"synthetic demo data as a manifest of own images, {views_phrase(config)}"
