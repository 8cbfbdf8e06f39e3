"""A synthetic chest X-ray data set in the exact NIH ChestX-ray14 layout.

The default workflow runs on it, so that every stage (and training, AUROC and localisation)
runs end to end on a machine without the 42 GB download, and its results mean something:
each of the 14 findings is planted as its own visual pattern, at a random place and size, and
its box is written to ``BBox_List_2017.csv``. Nothing here is medical imaging; the point is a
learnable, verifiable signal in the real file formats.

Layout written to ``out_dir`` (identical in form to NIH's release):

- ``Data_Entry_2017.csv``: the 2017 column set, CRLF line endings, trailing header comma, ages
  like ``058Y`` (a few in months), zero-padded follow-up numbers and patient IDs;
- ``images/<patient>_<follow-up>.png``: 8-bit grayscale PNGs of ``image_size`` squared;
- ``train_val_list.txt`` / ``test_list.txt``: patient-disjoint, sorted, no final newline;
- ``BBox_List_2017.csv``: one box per planted finding (NIH's header and 'Infiltrate' spelling;
  unlike NIH, every image and all 14 classes have boxes, so localisation can be checked on
  any split);
- ``google2019_labels.csv``: "expert re-reads" in the exact format of Majkowska et al.'s file
  for a share of the test-list (``Set Id`` test) and train/val-list (val) images, read off the
  planted findings (so here they agree with the metadata labels; Fracture is random).

Everything is a deterministic function of ``seed``; each image has its own random stream, so
the result does not depend on the number of worker processes.
"""

from __future__ import annotations

import importlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxr14.layouts.nih import EXPERT_FINDINGS
from cxr14.layouts.synthetic import (
    EXPERT_FILE,
    MAX_IMAGES_PER_PATIENT,
    relabel_problems,
    sample_metadata,
)
from cxr14.logs import console_progress
from cxr14.metadata import NO_FINDING

log = logging.getLogger(__name__)

BASE = 256  # findings are drawn at this resolution, then resized to image_size
# Share of the test-list / train-val-list images with expert re-reads (NIH: 1,962 / 2,414).
EXPERT_SHARE = {"test": 0.5, "val": 0.1}
# What the synthetic "radiologists" call each expert finding: any of these planted findings.
EXPERT_SEES = {
    "Pneumothorax": ("Pneumothorax",),
    "Airspace opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema"),
    "Nodule or mass": ("Nodule", "Mass"),
}
FRACTURE_PREVALENCE = 0.04


@dataclass
class Anatomy:
    """Per-patient geometry in unit coordinates (x right, y down)."""

    lung_cx: float  # horizontal offset of each lung centre from the midline
    lung_cy: float
    lung_rx: float
    lung_ry: float
    heart_cx: float
    heart_cy: float
    heart_rx: float
    heart_ry: float
    body_rx: float
    brightness: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Anatomy:
        return cls(
            lung_cx=rng.uniform(0.17, 0.2),
            lung_cy=rng.uniform(0.43, 0.47),
            lung_rx=rng.uniform(0.12, 0.145),
            lung_ry=rng.uniform(0.25, 0.29),
            heart_cx=rng.uniform(0.52, 0.55),
            heart_cy=rng.uniform(0.6, 0.64),
            heart_rx=rng.uniform(0.1, 0.12),
            heart_ry=rng.uniform(0.08, 0.1),
            body_rx=rng.uniform(0.4, 0.45),
            brightness=rng.uniform(0.9, 1.1),
        )


class Canvas:
    """A float image in [0, 1] at BASE resolution with unit-coordinate grids."""

    def __init__(self) -> None:
        g = (np.arange(BASE, dtype=np.float32) + 0.5) / BASE
        self.x = g[None, :]
        self.y = g[:, None]
        self.img = np.zeros((BASE, BASE), np.float32)

    def ellipse(self, cx, cy, rx, ry, edge=0.08) -> np.ndarray:
        """Soft mask (0..1) of an ellipse; ``edge`` is the soft rim as a fraction of radius."""
        r = np.sqrt(((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2)
        return np.clip((1 - r) / edge + 0.5, 0, 1)

    def gauss(self, cx, cy, rx, ry) -> np.ndarray:
        return np.exp(-(((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2))


def _lung_centre(a: Anatomy, side: int) -> tuple[float, float]:
    return 0.5 + side * a.lung_cx, a.lung_cy


def _point_in_lung(rng, a: Anatomy, side: int, y_lo=-0.7, y_hi=0.7, margin=0.65):
    """A random point well inside one lung; y range in lung-radius units (-1 top, 1 bottom)."""
    cx, cy = _lung_centre(a, side)
    v = rng.uniform(y_lo, y_hi)
    half = margin * np.sqrt(max(1 - v * v, 0.05))
    u = rng.uniform(-half, half)
    return cx + u * a.lung_rx, cy + v * a.lung_ry


def _box(cx, cy, rx, ry):
    return (cx - rx, cy - ry, cx + rx, cy + ry)


@dataclass
class Scene:
    """One radiograph being drawn: canvas, anatomy, random stream, lung mask and ribs."""

    c: Canvas
    a: Anatomy
    rng: np.random.Generator
    lungs: np.ndarray
    ribs: np.ndarray

    def side(self) -> int:
        return int(self.rng.choice((-1, 1)))


def _atelectasis(s: Scene, amp: float):  # flat dense band in a lower zone
    x, y = _point_in_lung(s.rng, s.a, s.side(), 0.2, 0.6)
    rx, ry = s.rng.uniform(0.07, 0.1), s.rng.uniform(0.018, 0.03)
    s.c.img += 0.3 * amp * s.c.ellipse(x, y, rx, ry, edge=0.4)
    return _box(x, y, rx, ry)


def _consolidation(s: Scene, amp: float):  # large soft opacity
    x, y = _point_in_lung(s.rng, s.a, s.side(), -0.2, 0.6, 0.4)
    r = s.rng.uniform(0.06, 0.08)
    s.c.img += 0.3 * amp * s.c.gauss(x, y, r, r)
    return _box(x, y, 1.2 * r, 1.2 * r)


def _edema(s: Scene, amp: float):  # bilateral perihilar haze ("bat wing")
    r = s.rng.uniform(0.07, 0.09)
    for side in (-1, 1):
        s.c.img += 0.22 * amp * s.c.gauss(0.5 + side * 0.12, s.a.lung_cy, r, 1.5 * r)
    return (0.5 - 0.12 - r, s.a.lung_cy - 1.5 * r, 0.5 + 0.12 + r, s.a.lung_cy + 1.5 * r)


def _effusion(s: Scene, amp: float):  # fluid filling a lung base, flat upper level
    lx, ly = _lung_centre(s.a, s.side())
    level = ly + s.a.lung_ry * s.rng.uniform(0.25, 0.55)
    lung = s.c.ellipse(lx, ly, s.a.lung_rx * 1.05, s.a.lung_ry * 1.05)
    fluid = np.clip((s.c.y - level) / 0.01, 0, 1) * lung
    s.c.img += 0.32 * amp * fluid
    return (lx - s.a.lung_rx, level, lx + s.a.lung_rx, ly + s.a.lung_ry)


def _fibrosis(s: Scene, amp: float):  # reticular net in an upper zone
    x, y = _point_in_lung(s.rng, s.a, s.side(), -0.6, -0.2, 0.3)
    r = s.rng.uniform(0.06, 0.08)
    net = (np.abs(np.sin(45 * s.c.x)) < 0.3) | (np.abs(np.sin(45 * s.c.y)) < 0.3)
    s.c.img += 0.25 * amp * net * s.c.ellipse(x, y, r, r, edge=0.3)
    return _box(x, y, r, r)


def _hernia(s: Scene, amp: float):  # round gas-filled bubble behind the heart
    x, y = 0.5 + s.rng.uniform(-0.03, 0.03), s.a.heart_cy + 0.06
    r = s.rng.uniform(0.04, 0.055)
    core = s.c.ellipse(x, y, 0.7 * r, 0.7 * r, edge=0.2)
    ring = s.c.ellipse(x, y, r, r, edge=0.2) - core
    s.c.img += 0.35 * amp * ring - 0.15 * s.c.ellipse(x, y, 0.7 * r, 0.7 * r)
    return _box(x, y, r, r)


def _infiltration(s: Scene, amp: float):  # patchy scattered small opacities
    x, y = _point_in_lung(s.rng, s.a, s.side(), -0.4, 0.4, 0.35)
    spread = s.rng.uniform(0.05, 0.07)
    pts = np.column_stack(
        [x + s.rng.uniform(-spread, spread, 6), y + s.rng.uniform(-spread, spread, 6)]
    )
    for px, py in pts:
        rr = s.rng.uniform(0.012, 0.02)
        s.c.img += 0.25 * amp * s.c.gauss(px, py, rr, rr)
    lo, hi = pts.min(0) - 0.02, pts.max(0) + 0.02
    return (lo[0], lo[1], hi[0], hi[1])


def _mass(s: Scene, amp: float):  # well-defined round opacity
    x, y = _point_in_lung(s.rng, s.a, s.side(), -0.6, 0.5, 0.5)
    r = s.rng.uniform(0.035, 0.05)
    s.c.img += 0.35 * amp * s.c.ellipse(x, y, r, r, edge=0.15)
    return _box(x, y, r, r)


def _nodule(s: Scene, amp: float):  # small sharp round opacity
    x, y = _point_in_lung(s.rng, s.a, s.side(), -0.7, 0.6, 0.6)
    r = s.rng.uniform(0.015, 0.022)
    s.c.img += 0.4 * amp * s.c.ellipse(x, y, r, r, edge=0.2)
    return _box(x, y, 1.3 * r, 1.3 * r)


def _pleural_thickening(s: Scene, amp: float):  # bright rim along the lateral lung border
    side = s.side()
    a, c = s.a, s.c
    lx, ly = _lung_centre(a, side)
    outer = c.ellipse(lx, ly, a.lung_rx * 1.06, a.lung_ry * 1.03, edge=0.05)
    rim = outer - c.ellipse(lx, ly, a.lung_rx * 0.9, a.lung_ry * 0.97, edge=0.05)
    lateral = ((c.x - lx) * side > 0.3 * a.lung_rx) & (c.y < ly + 0.3 * a.lung_ry)
    c.img += 0.3 * amp * np.clip(rim, 0, 1) * lateral
    xs = (lx + side * 0.3 * a.lung_rx, lx + side * 1.06 * a.lung_rx)
    return (min(xs), ly - 1.03 * a.lung_ry, max(xs), ly + 0.3 * a.lung_ry)


def _pneumonia(s: Scene, amp: float):  # opacity crossed by dark air bronchograms
    x, y = _point_in_lung(s.rng, s.a, s.side(), 0.0, 0.6, 0.4)
    r = s.rng.uniform(0.05, 0.065)
    stripes = 0.55 + 0.45 * np.sign(np.sin(2 * np.pi * (s.c.x - s.c.y) / 0.03))
    s.c.img += 0.32 * amp * s.c.gauss(x, y, r, r) * stripes
    return _box(x, y, 1.2 * r, 1.2 * r)


def _pneumothorax(s: Scene, amp: float):  # dark apical-lateral region without markings + line
    side = s.side()
    a, c = s.a, s.c
    lx, ly = _lung_centre(a, side)
    x, y = lx + side * 0.5 * a.lung_rx, ly - 0.55 * a.lung_ry
    rx, ry = 0.55 * a.lung_rx, 0.4 * a.lung_ry
    region = c.ellipse(x, y, rx, ry, edge=0.05)
    air = region * s.lungs
    line = np.clip(region - c.ellipse(x, y, 0.9 * rx, 0.9 * ry), 0, 1)
    c.img += -0.16 * amp * air - 0.06 * s.ribs * air + 0.25 * line * s.lungs
    return _box(x, y, rx, ry)


# Findings drawn where they occur; Cardiomegaly and Emphysema change the anatomy instead.
PATTERNS = {
    "Atelectasis": _atelectasis,
    "Consolidation": _consolidation,
    "Edema": _edema,
    "Effusion": _effusion,
    "Fibrosis": _fibrosis,
    "Hernia": _hernia,
    "Infiltration": _infiltration,
    "Mass": _mass,
    "Nodule": _nodule,
    "Pleural_Thickening": _pleural_thickening,
    "Pneumonia": _pneumonia,
    "Pneumothorax": _pneumothorax,
}
ANATOMICAL = ("Cardiomegaly", "Emphysema")
# Every finding the renderer plants (its names: NIH's labels).
FINDINGS = (*PATTERNS, *ANATOMICAL)


def _draw_anatomy(c: Canvas, rng, a: Anatomy, present: set[str], shift) -> tuple:
    """Body, lungs, ribs, spine and heart; returns (lungs, ribs, boxes of anatomical findings)."""
    cxs, cys = shift
    c.img += 0.42 * c.ellipse(0.5 + cxs, 0.58 + cys, a.body_rx, 0.55, edge=0.1)
    lung_ry = a.lung_ry * (1.12 if "Emphysema" in present else 1.0)
    lungs = np.zeros_like(c.img)
    for side in (-1, 1):
        lx, ly = _lung_centre(a, side)
        lung = c.ellipse(lx + cxs, ly + cys + (lung_ry - a.lung_ry) / 2, a.lung_rx, lung_ry)
        lungs = np.maximum(lungs, lung)
    c.img -= (0.2 if "Emphysema" in present else 0.3) * lungs  # hyperlucent lungs
    # Ribs: faint curved bands over the lungs.
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (9 * c.y + 3 * (c.x - 0.5) ** 2) + rng.uniform(0, 6))
    c.img += 0.06 * ribs * lungs
    c.img += 0.25 * c.ellipse(0.5 + cxs, 0.5, 0.035, 0.45, edge=0.2)  # spine / mediastinum
    hs = 1.45 if "Cardiomegaly" in present else 1.0
    heart = (a.heart_cx + cxs, a.heart_cy + cys, a.heart_rx * hs, a.heart_ry * hs)
    c.img += 0.3 * c.ellipse(*heart, edge=0.15)
    boxes = {}
    if "Cardiomegaly" in present:
        boxes["Cardiomegaly"] = _box(*heart)
    if "Emphysema" in present:
        top = a.lung_cy - lung_ry + cys
        left, right = 0.5 - a.lung_cx - a.lung_rx, 0.5 + a.lung_cx + a.lung_rx
        boxes["Emphysema"] = (left, top, right, top + 2 * lung_ry)
    return lungs, ribs, boxes


def render(rng: np.random.Generator, anatomy: Anatomy, findings: list[str]):
    """Draw one radiograph with the given findings. Returns (float image, {label: box})."""
    c = Canvas()
    shift = rng.uniform(-0.01, 0.01, size=2)  # positioning differs between follow-ups
    lungs, ribs, boxes = _draw_anatomy(c, rng, anatomy, set(findings), (shift[0], shift[1]))
    scene = Scene(c, anatomy, rng, lungs, ribs)
    for label in findings:
        amp = rng.uniform(0.8, 1.2)
        if label not in ANATOMICAL:
            boxes[label] = PATTERNS[label](scene, amp)
    c.img *= anatomy.brightness * rng.uniform(0.93, 1.07)
    c.img += rng.normal(0, 0.02, c.img.shape).astype(np.float32)
    return np.clip(c.img, 0, 1), boxes


def write_image(rel_path, findings, patient, follow_up, shape, out_dir, seed) -> dict:
    """Render one image of ``patient``'s ``follow_up`` with ``findings`` and save it at
    ``out_dir/rel_path`` (PNG or JPEG by its suffix) at ``shape`` (width, height); return its
    boxes ({label: (x0, y0, x1, y1)} in that image's pixels)."""
    anatomy = Anatomy.sample(np.random.default_rng([seed, patient]))
    img, boxes = render(np.random.default_rng([seed, patient, follow_up, 1]), anatomy, findings)
    pil = Image.fromarray(img * 255.0).resize(shape, Image.Resampling.BILINEAR)
    arr = np.clip(np.rint(np.asarray(pil)), 0, 255).astype(np.uint8)
    path = Path(out_dir) / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG compress_level=1: 3-4x faster than the default, a little larger files.
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    Image.fromarray(arr).save(path, **({"quality": 95} if jpeg else {"compress_level": 1}))
    scale = np.array([*shape, *shape], dtype=float)
    return {k: tuple((np.clip(b, 0, 1) * scale).tolist()) for k, b in boxes.items()}


def render_all(jobs: list[tuple], workers: int, what: str) -> list[dict]:
    """``write_image`` for every job (its arguments), on ``workers`` processes, in order."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            written = pool.map(_write_job, jobs, chunksize=16)
            return list(console_progress(written, len(jobs), what))
    return list(console_progress(map(_write_job, jobs), len(jobs), what))


def _write_job(args) -> dict:
    return write_image(*args)


def _nih_boxes(
    name: str, findings, boxes: dict
) -> list[tuple[str, str, float, float, float, float]]:
    """One image's boxes in NIH's form (its 'Infiltrate' spelling; x, y, w, h)."""
    out = []
    for label in findings:
        x0, y0, x1, y1 = boxes[label]
        out.append(
            (name, "Infiltrate" if label == "Infiltration" else label, x0, y0, x1 - x0, y1 - y0)
        )
    return out


def _write_tables(out_dir: Path, meta: pd.DataFrame, boxes: list) -> None:
    """Metadata, split lists and boxes in NIH's exact file formats."""
    columns = [c for c in meta.columns if c != "_test"]
    # NIH's 2017 file: CRLF endings and a header with a trailing comma (12 fields, 11 per row).
    with open(out_dir / "Data_Entry_2017.csv", "w", newline="") as f:
        f.write(
            ",".join(columns[:7]) + ",OriginalImage[Width,Height],"
            "OriginalImagePixelSpacing[x,y],\r\n"
        )
        for row in meta[columns].itertuples(index=False):
            f.write(",".join(row) + "\r\n")
    for name, mask in (("test_list.txt", meta["_test"]), ("train_val_list.txt", ~meta["_test"])):
        (out_dir / name).write_text("\n".join(sorted(meta.loc[mask, "Image Index"])))
    with open(out_dir / "BBox_List_2017.csv", "w", newline="") as f:
        f.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
        for name, label, x, y, w, h in boxes:
            f.write(f"{name},{label},{x:.6f},{y:.6f},{w:.6f},{h:.6f}\n")


def _write_expert_labels(out_dir: Path, meta: pd.DataFrame, seed: int) -> None:
    """``google2019_labels.csv`` in the real file's format: its header (bracketed fields split
    over two columns), CRLF endings, no final newline, integer ages, follow-up numbers and
    patient IDs, YES/NO values and the ``Set Id``."""
    rng = np.random.default_rng([seed, 2019])
    picked = [
        meta[meta["_test"] == (set_id == "test")].sample(frac=share, random_state=rng)
        for set_id, share in EXPERT_SHARE.items()
    ]
    lines = [
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],Fracture,"
        "Pneumothorax,Airspace opacity,Nodule or mass,Set Id"
    ]
    for set_id, rows in zip(EXPERT_SHARE, picked, strict=True):
        for r in rows.sort_values("Image Index").to_dict("records"):
            found = set(r["Finding Labels"].split("|"))
            seen = {k: bool(found.intersection(v)) for k, v in EXPERT_SEES.items()}
            seen["Fracture"] = rng.random() < FRACTURE_PREVALENCE
            age = int(r["Patient Age"][:-1]) // (12 if r["Patient Age"].endswith("M") else 1)
            cells = [
                r["Image Index"],
                r["Finding Labels"],
                str(int(r["Follow-up #"])),
                str(int(r["Patient ID"])),
                str(age),
                r["Patient Gender"],
                r["View Position"],
                r["OriginalImage[Width"],
                r["Height]"],
                r["OriginalImagePixelSpacing[x"],
                r["y]"],
                *("YES" if seen[k] else "NO" for k in EXPERT_FINDINGS),
                set_id,
            ]
            lines.append(",".join(cells))
    (out_dir / EXPERT_FILE).write_bytes("\r\n".join(lines).encode())


def labelled(found: set[str], meta: pd.DataFrame) -> set[str]:
    """The findings a copy's labeller reports for an image whose planted findings are
    ``found``: under ``meta.attrs["relabel"]`` (``generate``'s) a finding is reported where any
    of the planted findings it lists is, else where it is planted itself."""
    definitions = meta.attrs.get("relabel") or {}
    return {n for n in FINDINGS if found.intersection(definitions.get(n, (n,)))}


def _relabelled(meta: pd.DataFrame) -> pd.DataFrame:
    """``meta`` with each image's ``Finding Labels`` as its labeller reports them."""
    if not meta.attrs.get("relabel"):
        return meta
    out = meta.copy()
    planted = [set() if f == NO_FINDING else set(f.split("|")) for f in meta["Finding Labels"]]
    out["Finding Labels"] = [
        "|".join(sorted(labelled(f, meta))) or NO_FINDING
        for f in planted  # NIH's order
    ]
    return out


def write(
    out_dir: str | os.PathLike, meta: pd.DataFrame, image_size: int, seed: int, workers: int = 1
) -> pd.DataFrame:
    """Write the drawn metadata ``meta`` (``sample_metadata``) and its images in NIH's layout
    to ``out_dir`` (the labels as its labeller reports them: ``labelled``; boxes and expert
    re-reads of the planted findings); returns the metadata table."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            f"images/{r['Image Index']}",
            [] if r["Finding Labels"] == NO_FINDING else r["Finding Labels"].split("|"),
            int(r["Patient ID"]),
            int(r["Follow-up #"]),
            (image_size, image_size),
            str(out_dir),
            seed,
        )
        for _, r in meta.iterrows()
    ]
    written = render_all(jobs, workers, f"synthetic images of {image_size}x{image_size}")
    boxes = [
        b
        for job, found in zip(jobs, written, strict=True)
        for b in _nih_boxes(Path(job[0]).name, job[1], found)
    ]
    _write_tables(out_dir, _relabelled(meta), boxes)
    _write_expert_labels(out_dir, meta, seed)
    log.info(
        "synthetic data set: %d images, %d patients, %d boxes in %s",
        len(meta),
        meta["Patient ID"].nunique(),
        len(boxes),
        out_dir,
    )
    return meta


def generate(
    out_dir: str | os.PathLike,
    n_images: int = 2000,
    image_size: int = 1024,
    seed: int = 0,
    min_prevalence: float = 0.04,
    max_images_per_patient: int = MAX_IMAGES_PER_PATIENT,
    test_fraction: float = 0.2,
    workers: int = 1,
    writer: str = "cxr14.synthetic",
    relabel: dict | None = None,
) -> pd.DataFrame:
    """Draw the synthetic patients and findings (``sample_metadata``, a function of ``seed``)
    and write them with the ``write`` of module ``writer``, a layout's writer (NIH's layout by
    default; ``Layout.writer``); returns what it returns. ``relabel``: finding -> the planted
    findings its labeller reports it for (``labelled``; a deliberately different label
    definition, as data sets' labellers have), the images unchanged."""
    if problems := relabel_problems(relabel or {}):
        raise ValueError(problems[0])
    meta = sample_metadata(n_images, min_prevalence, max_images_per_patient, test_fraction, seed)
    meta.attrs["relabel"] = dict(relabel or {})
    return importlib.import_module(writer).write(out_dir, meta, image_size, seed, workers)
