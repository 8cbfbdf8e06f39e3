"""Decoding real NIH PNGs (8-bit, RGBA, 16-bit, any size) and rejecting broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxr14.imageio import BadImage, high_depth_to_unit, load_gray


def _reference(path, size=256):
    """What a careful user would do by hand for an 8-bit file."""
    return np.asarray(Image.open(path).convert("L").resize((size, size), Image.BILINEAR))


def test_all_real_images_load(nih_dir):
    paths = sorted((nih_dir / "images").glob("*.png"))
    assert len(paths) == 24
    for p in paths:
        arr = load_gray(p, 256)
        assert arr.shape == (256, 256) and arr.dtype == np.uint8
        np.testing.assert_array_equal(arr, _reference(p))
        assert 20 < arr.mean() < 235  # a radiograph, not a blank


def test_real_rgba_file_equals_its_gray_channel(nih_dir):
    path = nih_dir / "images" / "00000004_000.png"
    im = Image.open(path)
    assert im.mode == "RGBA" and "icc_profile" in im.info
    rgba = np.asarray(im)
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 3] == 255).all()
    gray = Image.fromarray(rgba[..., 0]).resize((256, 256), Image.BILINEAR)
    np.testing.assert_array_equal(load_gray(path, 256), np.asarray(gray))


@pytest.mark.parametrize("scale, bits", [(257, 16), (16.0588, 12)])
def test_16_bit_files_are_rescaled_not_clipped(tmp_path, nih_dir, scale, bits):
    """8-bit data stored as 16-bit (v*257) maps back to v; 12-bit data fills 0..255."""
    src = nih_dir / "images" / "00000001_000.png"
    v8 = np.asarray(Image.open(src).convert("L")).astype(np.float64)
    v16 = np.rint(v8 * scale).astype(np.uint16)
    assert v16.max() < 2**bits
    path = tmp_path / "deep.png"
    Image.fromarray(v16).save(path)
    assert Image.open(path).mode.startswith("I")
    out = load_gray(path, 256).astype(int)
    ref = _reference(src).astype(int)
    assert np.abs(out - ref).max() <= 1  # only rounding differs
    assert out.max() > 200  # a clip at 255 of the raw values would make it all white


def test_high_depth_scaling():
    np.testing.assert_allclose(high_depth_to_unit(np.array([0, 65535])), [0, 255])
    np.testing.assert_allclose(high_depth_to_unit(np.array([0, 4095])), [0, 255])
    np.testing.assert_allclose(high_depth_to_unit(np.array([0, 200])), [0, 200])


def test_any_size_and_mode(tmp_path, nih_dir):
    src = Image.open(nih_dir / "images" / "00000001_000.png")
    for mode, size in (
        ("L", (700, 600)),
        ("RGB", (2048, 2048)),
        ("LA", (512, 512)),
        ("P", (300, 333)),
    ):
        path = tmp_path / f"{mode}.png"
        src.convert(mode).resize(size).save(path)
        arr = load_gray(path, 128)
        assert arr.shape == (128, 128) and arr.dtype == np.uint8
        assert 20 < arr.mean() < 235


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p, real: None, "missing file"),
        (lambda p, real: p.write_bytes(b""), "zero-byte file"),
        (lambda p, real: p.write_bytes(real[: len(real) // 2]), "truncated or corrupt PNG"),
        (lambda p, real: p.write_bytes(b"\xff\xd8\xff\xe0JFIF" + real[:100]), "not a PNG"),
        (lambda p, real: p.write_text("Image Index,Finding Labels\n"), "not a PNG"),
    ],
    ids=["missing", "zero-byte", "truncated", "jpeg", "text"],
)
def test_bad_files_name_path_and_reason(tmp_path, nih_dir, make, reason):
    real = (nih_dir / "images" / "00000001_000.png").read_bytes()
    path = tmp_path / "00000001_000.png"
    make(path, real)
    with pytest.raises(BadImage) as err:
        load_gray(path, 64)
    assert reason in err.value.reason
    assert str(path) in str(err.value)
