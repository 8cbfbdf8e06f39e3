"""The 14 ChestX-ray14 finding labels in the project's fixed order.

The order is alphabetical, exactly as NIH lists them in the data set's README. Every table,
array and model output of the pipeline uses this order, so column ``k`` always means
``LABELS[k]``.
"""

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)

NO_FINDING = "No Finding"

# Spellings seen in NIH's own files that mean one of LABELS. `BBox_List_2017.csv` writes
# "Infiltrate"; some re-distributions write "Pleural Thickening" with a space.
ALIASES: dict[str, str] = {
    "Infiltrate": "Infiltration",
    "Pleural Thickening": "Pleural_Thickening",
}


def canonical_label(name: str) -> str | None:
    """Return the canonical label for ``name`` (one of LABELS), or None if it is unknown."""
    name = name.strip()
    if name in LABELS:
        return name
    return ALIASES.get(name)
