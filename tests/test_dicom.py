"""DICOM decoding for `cxr14 predict`, on files written with pydicom in the test: both
photometric interpretations, with and without rescale and windowing, and refusals by name."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_dicom
from pydicom.uid import JPEG2000Lossless

from cxr14.dicom import is_dicom, load_dicom
from cxr14.imageio import BadImage


@pytest.fixture
def ramp():
    return np.tile(np.linspace(0, 4095, 64).round(), (64, 1))  # float: no overflow below


def test_stored_bit_depth_is_the_range_and_monochrome1_is_inverted(tmp_path, ramp):
    mono2 = load_dicom(write_dicom(tmp_path / "a.dcm", ramp), 64)
    np.testing.assert_allclose(mono2, np.rint(ramp * 255 / 4095), atol=1)
    assert is_dicom(tmp_path / "a.dcm")
    mono1 = load_dicom(write_dicom(tmp_path / "b.dcm", ramp, photometric="MONOCHROME1"), 64)
    np.testing.assert_allclose(mono1.astype(int), 255 - mono2.astype(int), atol=1)


def test_rescale_and_window_are_applied(tmp_path, ramp):
    # Rescale keeps values in range: stored v -> 0.5 v + 100.
    rescaled = load_dicom(
        write_dicom(tmp_path / "r.dcm", ramp, RescaleSlope=0.5, RescaleIntercept=100), 64
    )
    np.testing.assert_allclose(rescaled, np.rint((0.5 * ramp + 100) * 255 / 4095), atol=1)
    # A window of width 1001 around 1500: below 1000 black, above 2000 white, linear between.
    win = load_dicom(write_dicom(tmp_path / "w.dcm", ramp, WindowCenter=1500, WindowWidth=1001), 64)
    row = ramp[0]
    assert (win[0][row < 990] == 0).all() and (win[0][row > 2010] == 255).all()
    mid = (row > 1100) & (row < 1900)
    np.testing.assert_allclose(win[0][mid], (row[mid] - 999.5) / 1000 * 255, atol=1.5)


def test_bad_dicoms_are_refused_by_name(tmp_path, ramp):
    frames = np.stack([ramp, ramp])
    with pytest.raises(BadImage, match="multi-frame DICOM \\(2 frames\\)"):
        load_dicom(write_dicom(tmp_path / "m.dcm", frames, frames=2), 64)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x07" * 50)
    with pytest.raises(BadImage, match="junk.dcm: unreadable DICOM|junk.dcm: DICOM without"):
        load_dicom(junk, 64)
    fake = write_dicom(tmp_path / "j2k.dcm", ramp, syntax=JPEG2000Lossless)
    with pytest.raises(BadImage, match="cannot decode DICOM pixel data \\(JPEG 2000"):
        load_dicom(fake, 64)
