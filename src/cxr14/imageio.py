"""Reading NIH PNGs robustly into 8-bit grayscale at a target size.

Real files are 8-bit ``L``; some are ``RGBA`` with R=G=B (``00000004_000.png``); other releases
carry 16-bit files. 16-bit data is rescaled by its bit depth instead of clipped at 255.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxr14.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESAMPLE = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class BadImage(DataError):
    """An image file is missing, empty, truncated or not a PNG. ``reason`` says which."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def high_depth_to_unit(arr: np.ndarray) -> np.ndarray:
    """Scale >8-bit intensities to float32 in [0, 255] by the smallest bit depth that holds them.

    A 16-bit file made from 8-bit data (v * 257) maps back to v exactly; 12-bit detector data
    (max 4095) fills the 8-bit range. Per-image min/max stretching is avoided on purpose: it
    would change intensities relative to the 8-bit files of the same data set.
    """
    arr = arr.astype(np.float32)
    lo = float(arr.min()) if arr.size else 0.0
    if lo < 0:
        raise ValueError("negative pixel values")
    hi = float(arr.max()) if arr.size else 0.0
    if hi <= 255:
        return arr
    bits = max(8, int(np.ceil(np.log2(hi + 1))))
    return arr * (255.0 / (2**bits - 1))


JPEG_SIGNATURE = b"\xff\xd8\xff"
# What `load_gray` decodes: the format PIL is told to read, by the file's first bytes.
FORMATS = {PNG_SIGNATURE: "PNG", JPEG_SIGNATURE: "JPEG"}


def _open(path: str | os.PathLike, formats: tuple[str, ...]) -> Image.Image:
    """Decode ``path`` completely, if it is one of ``formats``; BadImage otherwise."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise BadImage(path, "missing file") from None
    except OSError as exc:
        raise BadImage(path, f"cannot open ({exc.strerror})") from None
    with f:
        head = f.read(8)
        if not head:
            raise BadImage(path, "zero-byte file")
        fmt = next((n for sig, n in FORMATS.items() if head.startswith(sig)), None)
        if fmt not in formats:
            raise BadImage(path, f"not a {' or '.join(formats)} file (starts with {head!r})")
        f.seek(0)
        try:
            im = Image.open(f, formats=[fmt])
            im.load()
        except (OSError, SyntaxError, UnidentifiedImageError, ValueError) as exc:
            raise BadImage(path, f"truncated or corrupt {fmt} ({exc})") from None
    return im


def load_gray(
    path: str | os.PathLike, size: int, resample: str = "bilinear", formats=("PNG",)
) -> np.ndarray:
    """Decode one image (PNG; JPEG too where ``formats`` says so) and return a (size, size)
    uint8 grayscale array (antialiased resize).

    Raises BadImage naming the file for a missing, zero-byte, other-format or truncated file.
    """
    return to_gray(_open(path, formats), size, resample, path)


def to_gray(im: Image.Image, size: int, resample: str, path: str | os.PathLike) -> np.ndarray:
    """A decoded image as (size, size) uint8 grayscale: 16-bit data rescaled by its bit depth,
    colour by ITU-R 601 luma, then the antialiased resize."""
    filt = RESAMPLE[resample]
    w, h = im.size
    if w == 0 or h == 0:
        raise BadImage(path, "image has no pixels")
    if im.mode == "L":
        pass
    elif im.mode in _HIGH_DEPTH_MODES:
        # Resize in float so that the 8-bit rounding happens once, at the end.
        arr = high_depth_to_unit(np.asarray(im))
        out = Image.fromarray(arr).resize((size, size), filt)
        return np.clip(np.rint(np.asarray(out)), 0, 255).astype(np.uint8)
    elif im.mode in ("LA", "La"):
        im = im.getchannel("L")
    else:
        # RGB(A), P, 1, CMYK...: ITU-R 601 luma; equals the channel value when R=G=B. Alpha
        # is ignored (NIH's RGBA files are fully opaque).
        im = im.convert("L")
    if im.size != (size, size):
        im = im.resize((size, size), filt)
    return np.asarray(im, dtype=np.uint8)
