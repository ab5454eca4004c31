"""Metadata never costs the pixels: WebP EXIF and XMP chunks (issue 12's first refusal).

FFmpeg's WebP decoder parses an EXIF chunk and reports a malformed one (cameras and
phones write a JPEG-style "Exif\\0\\0" prefix there) as an error although the picture is
whole. The demuxer removes an extended WebP's EXIF and XMP chunks from its own copy of
the data before the decoder sees it (spdl.io._structure.webp_strip_metadata).
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch

_TIFF = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
METADATA = {
    "garbage_exif": dict(exif=b"garbage, not a TIFF header"),
    "exif_with_jpeg_prefix": dict(exif=b"Exif\x00\x00" + _TIFF),
    "valid_exif": dict(exif=_TIFF),
    "xmp": dict(xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"),
    "bad_exif_and_xmp": dict(exif=b"bad", xmp=b"<x/>"),
}


def _image(mode):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (37, 53, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    return Image.fromarray(a, mode)


def _webp(im, lossless, **meta):
    bio = io.BytesIO()
    im.save(bio, "WEBP", lossless=lossless, quality=90, **meta)
    return bio.getvalue()


@pytest.mark.parametrize("name", sorted(METADATA))
@pytest.mark.parametrize("lossless,mode", [(False, "RGB"), (True, "RGB"), (True, "RGBA")])
def test_webp_metadata_keeps_the_pixels(tmp_path, name, lossless, mode):
    im = _image(mode)
    plain = _webp(im, lossless)
    data = _webp(im, lossless, **METADATA[name])
    assert b"VP8X" in data[:16] and len(data) > len(plain)
    keep = bytes(data)
    path = tmp_path / "m.webp"
    path.write_bytes(data)
    pix_fmt = "rgba" if mode == "RGBA" else "rgb24"
    ref = np_batch(spdl.io.load_image_batch([plain], width=None, height=None, pix_fmt=pix_fmt))
    out = np_batch(spdl.io.load_image_batch([data, str(path)], width=None, height=None,
                                            pix_fmt=pix_fmt))
    np.testing.assert_array_equal(out[0], ref[0])
    np.testing.assert_array_equal(out[1], ref[0])
    assert data == keep  # the caller's bytes are not touched
    if lossless:  # and they are the picture (Pillow decodes it through libwebp)
        np.testing.assert_array_equal(out[0], np.asarray(Image.open(io.BytesIO(data)).convert(mode)))


def test_chunk_running_past_the_end_is_left_to_the_decoder():
    """A metadata chunk whose size runs past the file is not touched (no read or move
    beyond the data); the decoder judges the file as it is."""
    data = bytearray(_webp(_image("RGB"), False, exif=b"x" * 40))
    i = data.index(b"EXIF")
    data[i + 4:i + 8] = struct.pack("<I", 10_000)
    buf = spdl.io.load_image_batch([bytes(data)], width=8, height=8, strict=False)
    assert len(buf.indices) + len(buf.errors) == 1
