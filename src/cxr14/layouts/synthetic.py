"""The synthetic demo set's layout: NIH ChestX-ray14's files and parsers, written by the
workflow into ``results/synthetic`` (``cxr14.synthetic`` renders the images and writes the
files), and the metadata it draws: patients with 1-12 follow-up images, NIH's relative
prevalence with rare classes raised, a patient-disjoint test list. Everything is a deterministic
function of the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr14.layouts.base import Wording, views_phrase
from cxr14.layouts.nih import LABELS, NIH
from cxr14.metadata import NO_FINDING

# Image-level prevalence in NIH's Data_Entry_2017.csv (count / 112,120).
NIH_COUNTS = {
    "Atelectasis": 11535,
    "Cardiomegaly": 2772,
    "Consolidation": 4667,
    "Edema": 2303,
    "Effusion": 13307,
    "Emphysema": 2516,
    "Fibrosis": 1686,
    "Hernia": 227,
    "Infiltration": 19870,
    "Mass": 5746,
    "Nodule": 6323,
    "Pleural_Thickening": 3385,
    "Pneumonia": 1353,
    "Pneumothorax": 5298,
}
NIH_IMAGES = 112120
# Follow-up images per patient: 1 to this many.
MAX_IMAGES_PER_PATIENT = 12
# Findings that persist across a patient's follow-up images (decided once per patient).
CHRONIC = ("Cardiomegaly", "Emphysema", "Fibrosis", "Hernia", "Pleural_Thickening")
EXPERT_FILE = "google2019_labels.csv"


def prevalence(min_prevalence: float) -> dict[str, float]:
    """NIH's relative prevalence, rare classes raised to ``min_prevalence``."""
    return {c: max(n / NIH_IMAGES, min_prevalence) for c, n in NIH_COUNTS.items()}


def sample_metadata(n_images, min_prevalence, max_per_patient, test_fraction, seed):
    """The metadata table in NIH's columns (and ``_test``: the patient is on the test list)."""
    rng = np.random.default_rng(seed)
    prev = prevalence(min_prevalence)
    rows = []
    pid = 0
    while len(rows) < n_images:
        pid += 1
        n = int(min(rng.geometric(0.35), max_per_patient, n_images - len(rows)))
        chronic = {c for c in CHRONIC if rng.random() < prev[c]}
        age0 = float(np.clip(rng.normal(47, 16), 1, 90))
        sex = "M" if rng.random() < 0.56 else "F"
        for fu in range(n):
            found = sorted(
                chronic | {c for c in LABELS if c not in CHRONIC and rng.random() < prev[c]}
            )
            age = age0 + fu * rng.uniform(0, 0.5)
            # A few children, written in months as NIH does.
            age_str = f"{int(age):03d}Y" if age >= 2 else f"{int(age * 12):03d}M"
            rows.append(
                {
                    "Image Index": f"{pid:08d}_{fu:03d}.png",
                    "Finding Labels": "|".join(found) if found else NO_FINDING,
                    "Follow-up #": f"{fu:03d}",
                    "Patient ID": f"{pid:08d}",
                    "Patient Age": age_str,
                    "Patient Gender": sex,
                    "View Position": "PA" if rng.random() < 0.6 else "AP",
                    "OriginalImage[Width": str(int(rng.integers(2000, 3000))),
                    "Height]": str(int(rng.integers(2000, 3000))),
                    "OriginalImagePixelSpacing[x": "0.143",
                    "y]": "0.143",
                }
            )
    meta = pd.DataFrame(rows)
    patients = meta["Patient ID"].unique()
    n_test = max(1, round(test_fraction * len(patients)))
    test_patients = set(rng.choice(patients, size=n_test, replace=False))
    meta["_test"] = meta["Patient ID"].isin(test_patients)
    return meta


class Synthetic(NIH):
    """The generated demo set: NIH's files and parsers, in ``results/synthetic``."""

    name = "synthetic"
    results_caveat = "results on the synthetic demo set are never NIH results"
    # Where the workflow writes it (rule generate_synthetic_data).
    DIR = "results/synthetic"
    generated = True
    writer = "cxr14.synthetic"
    wording = Wording(
        labels="the synthetic set's labels",
        official_split="the synthetic set's fixed split (its test_list.txt)",
        official_test="the synthetic set's test list",
        label_note=(
            "The synthetic set's labels are the findings planted in its images: exact, unlike "
            "any real data set's."
        ),
        expert_source="synthetic re-reads of the planted findings",
    )

    def data_dir(self, config: dict) -> str:
        return self.DIR

    def metadata_file(self, config: dict) -> str:
        return f"{self.DIR}/Data_Entry_2017.csv"

    def missing_paths(self, config: dict) -> list[str]:
        return []  # the workflow writes every file

    def parse_inputs(self, config: dict) -> dict[str, str]:
        # The image folder is an output of the generating rule: depend on it.
        return {**super().parse_inputs(config), "images": f"{self.DIR}/images"}

    def written_files(self, config: dict) -> dict[str, str]:
        files = ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt")
        names = ("metadata", "train_val_list", "test_list", "bbox", "expert_labels", "images")
        files += ("BBox_List_2017.csv", EXPERT_FILE, "images")
        return {k: f"{self.DIR}/{f}" for k, f in zip(names, files, strict=True)}

    def count_patients(self, config: dict) -> int | None:
        # The metadata is drawn before any image (and quickly): draw it again.
        s = config["synthetic"]
        args = (
            s["n_images"],
            s["min_prevalence"],
            MAX_IMAGES_PER_PATIENT,
            s["test_fraction"],
            s["seed"],
        )
        return int(sample_metadata(*args)["Patient ID"].nunique())

    def box_space(self, config: dict) -> int:
        # Boxes are written in the pixels of the generated PNGs.
        return config["synthetic"]["image_size"]

    def expert_labels_file(self, config: dict) -> str | None:
        return f"{self.DIR}/{EXPERT_FILE}"

    def bbox_file(self, config: dict) -> str | None:
        return f"{self.DIR}/BBox_List_2017.csv"  # written by the workflow

    def display_label(self, config: dict) -> str:
        return f"synthetic demo data (not NIH), {views_phrase(config)}"

    def metadata_release(self, path, sha256: str | None = None) -> str:
        return "synthetic, generated by this workflow from synthetic.seed"
