"""Reading a DICOM radiograph into the 8-bit grayscale the models were trained on (pydicom),
and ``load_image``: the one decoder of every format (PNG, JPEG, DICOM) that the store and
``cxr14 predict`` share (``decode_images``: many files on threads, in order).

Pixel data go through the modality LUT (rescale slope and intercept), then the VOI
transformation when the file has one (window centre and width, DICOM PS3.3 C.11.2.1.2.1, or a
VOI LUT), onto 0-255; without a VOI transformation the stored bit depth is the range (as
``imageio`` scales 16-bit PNGs, no per-image stretching). MONOCHROME1 (bright = low values) is
inverted. Multi-frame files and pixel data that pydicom cannot decode are refused by name.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

from cxr14.imageio import RESAMPLE, BadImage, load_gray

DICOM_MAGIC = b"DICM"  # at byte offset 128


def is_dicom(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == DICOM_MAGIC
    except OSError:
        return False


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear VOI function onto 0-255."""
    low = center - 0.5 - (width - 1) / 2
    return np.clip((values - low) / max(width - 1, 1) * 255.0, 0, 255)


def _first(value) -> float:
    return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)


def _to_unit(ds, pixels: np.ndarray) -> np.ndarray:
    """Stored values -> float32 in [0, 255], bright = dense."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        out = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    elif "VOILUTSequence" in ds:
        lut = ds.VOILUTSequence[0]
        out = apply_voi_lut(values, ds).astype(np.float64) * 255.0 / (2 ** lut.LUTDescriptor[2] - 1)
    else:
        lo, hi = values.min(), values.max()
        top = 2 ** int(ds.get("BitsStored", 8)) - 1
        if lo < 0 or hi > top:  # rescaled out of the stored range: use the image's own range
            out = (values - lo) / max(hi - lo, 1e-9) * 255.0
        else:
            out = values * 255.0 / top
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        out = 255.0 - out
    return np.clip(out, 0, 255).astype(np.float32)


def load_dicom(path: str | os.PathLike, size: int, resample: str = "bilinear") -> np.ndarray:
    """Decode one DICOM file to a (size, size) uint8 array; BadImage naming the reason."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise BadImage(path, f"unreadable DICOM ({exc})") from None
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise BadImage(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames): one image expected")
    if "PixelData" not in ds:
        raise BadImage(path, "DICOM without pixel data")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for undecodable data
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise BadImage(path, f"cannot decode DICOM pixel data ({name}): {exc}") from None
    if pixels.ndim == 3:  # colour (RGB/YBR converted by pydicom): ITU-R 601 luma
        pixels = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
    unit = _to_unit(ds, pixels)
    out = Image.fromarray(unit).resize((size, size), RESAMPLE[resample])
    return np.clip(np.rint(np.asarray(out)), 0, 255).astype(np.uint8)


# Every format the pipeline reads.
FORMATS = ("PNG", "JPEG", "DICOM")


def load_image(path, size: int, resample: str = "bilinear", formats=FORMATS) -> np.ndarray:
    """A PNG (8 or 16 bit), JPEG or DICOM file (by content, or a .dcm/.dicom name) among
    ``formats``, as the pipeline's (size, size) uint8 grayscale; BadImage names the file."""
    if "DICOM" in formats and (is_dicom(path) or Path(path).suffix.lower() in (".dcm", ".dicom")):
        return load_dicom(path, size, resample)
    return load_gray(path, size, resample, formats=tuple(f for f in formats if f != "DICOM"))


def _try_load(path, size: int, resample: str, formats) -> tuple[np.ndarray | None, str | None]:
    try:
        return load_image(path, size, resample, formats), None
    except BadImage as exc:
        return None, exc.reason


def decode_images(
    paths: Sequence, size: int, resample: str, threads: int, formats=FORMATS, window=None
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """Yield (array, None) or (None, reason) per path, in order (``load_image``), decoded on
    ``threads`` threads (0: in the caller's thread, one at a time) at most ``window`` images
    (default ``4 * threads``) ahead of the consumer, which keeps memory flat. PIL releases the
    GIL while decoding and resizing, so the threads scale and overlap the consumer's work.
    Closing the iterator early cancels the decoding not yet started."""
    args = (size, resample, tuple(formats))
    if threads < 1:
        for p in paths:
            yield _try_load(p, *args)
        return
    window = max(1, window or 4 * threads)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="cxr14-decode")
    try:
        todo = iter(paths)
        pending = deque(pool.submit(_try_load, p, *args) for p in islice(todo, window))
        while pending:
            result = pending.popleft().result()
            # One submitted per one consumed: never more than ``window`` in flight.
            pending.extend(pool.submit(_try_load, p, *args) for p in islice(todo, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
