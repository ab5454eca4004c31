"""Complete data with a missing trailer loads; truncated data stays a DecodeError (issue 12).

A PNG whose chunks, image data included, are all there but whose IEND trailer is
missing is shown by browsers; FFmpeg's decoder reports the missing trailer as damage.
The demuxer gives its own copy of the data the trailer (spdl.io._structure.
png_lacks_only_iend). A file cut inside a chunk, or at a chunk boundary before the
image data ends, is still refused.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch

IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png(h, w, mode="RGB"):
    a = np.random.default_rng(h * w).integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    a = a[..., 0] if mode == "L" else a
    bio = io.BytesIO()
    Image.fromarray(a, mode).save(bio, "PNG")
    data = bio.getvalue()
    assert data.endswith(IEND)
    return data, a


@pytest.mark.parametrize("h,w,mode", [(20, 30, "RGB"), (300, 300, "RGB"), (17, 9, "RGBA"), (40, 41, "L")])
def test_png_without_iend_loads_exactly(tmp_path, h, w, mode):
    data, a = _png(h, w, mode)
    cut = data[:-len(IEND)]
    keep = bytes(cut)
    path = tmp_path / "t.png"
    path.write_bytes(cut)
    pix_fmt = {"RGB": "rgb24", "RGBA": "rgba", "L": "gray"}[mode]
    out = np_batch(spdl.io.load_image_batch([cut, str(path)], width=None, height=None, pix_fmt=pix_fmt))
    want = a if a.ndim == 3 else a[..., None]
    np.testing.assert_array_equal(out[0], want)
    np.testing.assert_array_equal(out[1], want)
    assert cut == keep


def test_truncated_png_is_still_refused():
    data, _ = _png(300, 300)  # several IDAT chunks
    idat = [i - 4 for i in range(len(data)) if data[i:i + 4] == b"IDAT"]
    assert len(idat) > 1
    for cut in (data[:-30], data[:idat[1]], data[:idat[0]], data[:idat[0] + 20]):
        with pytest.raises(spdl.io.BatchLoadError) as e:
            spdl.io.load_image_batch([cut], width=None, height=None)
        assert isinstance(e.value.errors[0], spdl.io.DecodeError), e.value
