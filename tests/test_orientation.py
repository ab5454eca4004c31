"""EXIF orientation (issue 12): JPEG APP1, WebP EXIF and PNG eXIf turn the image as
viewers show it; sizes, padding, crop boxes and buf.crops are in the turned image's
pixels; DecodeConfig(apply_orientation=False) keeps the stored pixels; malformed EXIF
is orientation 1, never an error."""

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

import spdl.io as sio
from spdl.io import _testing

FORMATS = ["JPEG", "WEBP", "PNG"]
LOSSLESS = {"WEBP": {"lossless": True}, "PNG": {}, "JPEG": {"quality": 95}}


def _stored(h=48, w=64):
    """An asymmetric picture with no black pixel (padding shows as black)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = 30 + np.arange(w)[None, :] * 3
    a[..., 1] = 30 + np.arange(h)[:, None] * 4
    a[..., 2] = 60
    a[: h // 6, : w // 6, 2] = 250  # a corner mark
    return a


def _encode(a, fmt, exif=None):
    img = Image.fromarray(a)
    b = io.BytesIO()
    kw = dict(LOSSLESS[fmt])
    if exif is not None:
        kw["exif"] = exif
    img.save(b, fmt, **kw)
    return b.getvalue()


def _with_orientation(a, fmt, o):
    ex = Image.new("RGB", (1, 1)).getexif()
    ex[0x0112] = o
    return _encode(a, fmt, ex)


def _viewed(data):
    """Pillow's decode, turned by its EXIF orientation."""
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


def _load(data, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    kw.setdefault("pix_fmt", "rgb24")
    return sio.load_image_batch([data], **kw)


def _mad(a, b):
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("o", range(1, 9))
def test_native_size(fmt, o):
    data = _with_orientation(_stored(), fmt, o)
    ref = _viewed(data)
    got = np.asarray(_load(data))[0]
    assert got.shape == ((64, 48, 3) if o >= 5 else (48, 64, 3))
    assert got.shape == ref.shape
    if fmt == "JPEG":
        assert _mad(got, ref) <= 0.5
    else:
        assert np.array_equal(got, ref)
    # the stored pixels on request
    kept = np.asarray(_load(data, decode_config=sio.DecodeConfig(apply_orientation=False)))[0]
    plain = np.asarray(_load(_encode(_stored(), fmt)))[0]
    assert np.array_equal(kept, plain)


PLANS = [
    dict(width=40, height=36, scale_mode="pad"),
    dict(width=40, height=36, scale_mode="crop"),
    dict(width=40, height=36, scale_mode="stretch"),
    dict(width=41, height=None),
    dict(width=None, height=27),
    dict(width=41, height=27, scale_mode="pad"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("o", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("plan", range(len(PLANS)))
def test_resized_placement(fmt, o, plan):
    """The oriented image resized as the plan says equals the plan applied to the viewed
    image saved without EXIF (a lossless PNG of Pillow's turned decode): same size, the
    padding in the same place, pixels within rounding."""
    kw = PLANS[plan]
    data = _with_orientation(_stored(), fmt, o)
    viewed = _encode(_viewed(data), "PNG")
    got = np.asarray(_load(data, **kw))[0]
    ref = np.asarray(_load(viewed, **kw))[0]
    assert got.shape == ref.shape
    pad_ref = (ref == 0).all(axis=-1)
    pad_got = (got == 0).all(axis=-1)
    assert np.array_equal(pad_got, pad_ref)
    assert _mad(got, ref) <= (2.0 if fmt == "JPEG" else 0.6)


@pytest.mark.parametrize("o", [1, 3, 6, 8])
@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv420p", "rgbp", "gray", "bgr24", "rgba"])
def test_other_outputs(o, pix_fmt):
    data = _with_orientation(_stored(), "PNG", o)
    viewed = _encode(_viewed(data), "PNG")
    # (4:2:0: the padding even, so that no chroma sample straddles its edge)
    for kw in (dict(width=40, height=38), dict(width=None, height=None)):
        got = np.asarray(_load(data, pix_fmt=pix_fmt, **kw))
        ref = np.asarray(_load(viewed, pix_fmt=pix_fmt, **kw))
        assert got.shape == ref.shape
        assert _mad(got, ref) <= 0.6


@pytest.mark.parametrize("o", [1, 2, 5, 6, 7, 8])
def test_native_format_frames(o):
    """pix_fmt=None keeps the decoded format: a 4:2:2 JPEG turned by 90 degrees comes out
    4:4:0, its planes transposed."""
    a = _stored(48, 64)
    img = Image.fromarray(a)
    ex = img.getexif()
    ex[0x0112] = o
    b = io.BytesIO()
    img.save(b, "JPEG", quality=95, subsampling=1, exif=ex)  # 4:2:2
    data = b.getvalue()
    frames = sio.decode_packets(sio.demux_image(data))
    assert (frames.width, frames.height) == ((48, 64) if o >= 5 else (64, 48))
    assert frames.pix_fmt == ("yuvj440p" if o >= 5 else "yuvj422p")
    rgb = sio.decode_packets(sio.demux_image(data), pix_fmt="rgb24")
    assert _mad(np.asarray(sio.convert_frames([rgb]))[0], _viewed(data)) <= 1.0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("o", [1, 2, 3, 5, 6, 8])
def test_crop_boxes_in_viewed_pixels(fmt, o):
    data = _with_orientation(_stored(), fmt, o)
    viewed_px = _viewed(data)
    viewed = _encode(viewed_px, "PNG")
    vh, vw = viewed_px.shape[:2]
    box = (3, 5, vw - 13, vh - 9)
    kw = dict(width=24, height=20, crop=[box])
    got = _load(data, **kw)
    ref = _load(viewed, **kw)
    assert got.crops == ((*box, False),)
    assert _mad(np.asarray(got)[0], np.asarray(ref)[0]) <= (2.0 if fmt == "JPEG" else 0.6)
    # against Pillow: the box of the turned image, resized bicubic
    pil = np.asarray(Image.fromarray(viewed_px).crop((box[0], box[1], box[0] + box[2],
                                                      box[1] + box[3])).resize((24, 20),
                                                                               Image.BICUBIC))
    assert _mad(np.asarray(got)[0], pil) <= 3.0
    # a box inside the stored image but outside the viewed one fails as such
    if o >= 5:
        with pytest.raises(sio.BatchLoadError):
            _load(data, width=24, height=20, crop=[(0, 0, 64, 10)])


@pytest.mark.parametrize("o", [1, 4, 6, 7])
def test_random_crops_and_flips(o):
    """RandomResizedCrop / CenterCrop draw in the viewed image (same draws as for the viewed
    image without EXIF), flips mirror the viewed result; float NCHW rows too."""
    data = _with_orientation(_stored(96, 128), "PNG", o)
    viewed = _encode(_viewed(data), "PNG")
    for crop in (sio.RandomResizedCrop(), sio.CenterCrop()):
        kw = dict(width=32, height=24, crop=crop, hflip=0.5, seed=7)
        srcs = [data] * 6
        got = _load(srcs[0], **kw) if False else sio.load_image_batch(srcs, **kw)
        ref = sio.load_image_batch([viewed] * 6, **kw)
        assert got.crops == ref.crops
        assert _mad(np.asarray(got), np.asarray(ref)) <= 0.6
        kw.update(dtype="float32", layout="NCHW")
        f_got = np.asarray(sio.load_image_batch(srcs, **kw))
        f_ref = np.asarray(sio.load_image_batch([viewed] * 6, **kw))
        assert np.abs(f_got - f_ref).mean() <= 0.6 / 255


@pytest.mark.parametrize("o", [2, 5, 6, 7])
def test_jpeg_region_decode_identical(o):
    a = np.asarray(Image.fromarray(_stored(240, 320)).resize((320, 240)))
    data = _with_orientation(a, "JPEG", o)
    kw = dict(width=40, height=32, crop=sio.RandomResizedCrop(), seed=3)
    srcs = [data] * 8
    region = sio.load_image_batch(srcs, **kw)
    _testing.use_jpeg_region(False)
    try:
        whole = sio.load_image_batch(srcs, **kw)
    finally:
        _testing.use_jpeg_region(True)
    assert region.crops == whole.crops
    assert np.array_equal(np.asarray(region), np.asarray(whole))


# -- malformed EXIF: orientation 1, never an error ------------------------------------------

def _tiff(entries, order="II", ifd=8, count=None, magic=42, next_ifd=0, cut=None):
    e = "<" if order == "II" else ">"
    head = order.encode() + struct.pack(e + "HI", magic, ifd)
    body = struct.pack(e + "H", len(entries) if count is None else count)
    for tag, typ, cnt, value in entries:
        body += struct.pack(e + "HHI", tag, typ, cnt)
        body += struct.pack(e + "HH", value, 0) if typ == 3 else struct.pack(e + "I", value)
    body += struct.pack(e + "I", next_ifd)
    t = head + body
    return t[:cut] if cut is not None else t


GOOD = [(0x010F, 2, 1, 0), (0x0112, 3, 1, 6)]
MALFORMED = {
    "orientation_0": _tiff([(0x0112, 3, 1, 0)]),
    "orientation_9": _tiff([(0x0112, 3, 1, 9)]),
    "type_long": _tiff([(0x0112, 4, 1, 6)]),
    "count_2": _tiff([(0x0112, 3, 2, 6)]),
    "ifd_past_end": _tiff(GOOD, ifd=4000),
    "ifd_in_header": _tiff(GOOD, ifd=2),
    "ifd_huge": _tiff(GOOD, ifd=0xFFFFFFF0),
    "truncated_ifd": _tiff(GOOD, cut=8 + 2 + 12 + 6),
    "count_past_end": _tiff([(0x010F, 2, 1, 0)], count=60000),
    "ifd_loop": _tiff([(0x010F, 2, 1, 0)], next_ifd=8),
    "byte_order": b"IM" + _tiff(GOOD)[2:],
    "magic": _tiff(GOOD, magic=43),
    "empty": b"",
    "short": b"II*\x00",
}


def _jpeg_app1(payload):
    base = _encode(_stored(), "JPEG")
    seg = b"Exif\x00\x00" + payload
    return base[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + base[2:]


def _png_exif(payload):
    import zlib
    base = _encode(_stored(), "PNG")
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    return base[:33] + chunk + base[33:]  # after IHDR


def _webp_exif(payload):
    return _encode(_stored(), "WEBP", exif=b"Exif\x00\x00" + payload)


@pytest.mark.parametrize("wrap", [_jpeg_app1, _png_exif, _webp_exif])
@pytest.mark.parametrize("order", ["II", "MM"])
def test_hand_made_exif(wrap, order):
    data = wrap(_tiff(GOOD, order=order))
    assert np.asarray(_load(data)).shape == (1, 64, 48, 3)


@pytest.mark.parametrize("wrap", [_jpeg_app1, _png_exif, _webp_exif])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_exif_is_orientation_1(wrap, case):
    data = wrap(MALFORMED[case])
    buf = _load(data)
    assert np.asarray(buf).shape == (1, 48, 64, 3)
    assert _mad(np.asarray(buf)[0], _stored()) <= 3.0


def test_config():
    assert sio.DecodeConfig().apply_orientation is True
    with pytest.raises(TypeError):
        sio.DecodeConfig(apply_orientation=1)


@pytest.mark.parametrize("o", [3, 6])
def test_filter_graph_sees_stored_pixels(o):
    """A filter_desc runs on the stored pixels; its output is turned like a decoded image."""
    data = _with_orientation(_stored(), "PNG", o)
    got = np.asarray(_load(data, filter_desc="null"))[0]
    assert np.array_equal(got, _viewed(data))


def test_mixed_batch_two_threads():
    """Every orientation in one batch, two workers (the per-worker scratch is reused between
    images of different orientations): each row equals the image loaded alone."""
    srcs = [_with_orientation(_stored(), fmt, o) for o in range(1, 9) for fmt in ("PNG", "JPEG")]
    before = sio.get_num_threads()
    sio.set_num_threads(2)
    try:
        for kw in (dict(width=40, height=36),
                   dict(width=40, height=36, dtype="float32", layout="NCHW")):
            batch = np.asarray(sio.load_image_batch(srcs, pix_fmt="rgb24", **kw))
            for i, s in enumerate(srcs):
                one = np.asarray(sio.load_image_batch([s], pix_fmt="rgb24", **kw))[0]
                assert np.array_equal(batch[i], one)
    finally:
        sio.set_num_threads(before)


def test_random_exif_bytes_never_fail():
    """Mutated EXIF payloads (bytes flipped, cut, grown) load, as some orientation in 1..8."""
    rng = np.random.default_rng(12)
    good = _tiff(GOOD + [(0x0131, 2, 4, 0x41414141)], next_ifd=8)
    for i in range(300):
        t = bytearray(good)
        for _ in range(rng.integers(1, 6)):
            t[rng.integers(len(t))] = rng.integers(256)
        t = bytes(t[: rng.integers(0, len(t) + 1)]) + bytes(rng.integers(0, 256, rng.integers(0, 8), np.uint8))
        data = (_jpeg_app1, _png_exif, _webp_exif)[i % 3](t)
        a = np.asarray(_load(data))[0]
        assert a.shape in ((48, 64, 3), (64, 48, 3))


@pytest.mark.parametrize("o", range(1, 9))
def test_tiff_orientation_tag(o):
    b = io.BytesIO()
    Image.fromarray(_stored()).save(b, "TIFF", tiffinfo={0x0112: o})
    data = b.getvalue()
    assert np.array_equal(np.asarray(_load(data))[0], _viewed(data))
    kept = _load(data, decode_config=sio.DecodeConfig(apply_orientation=False))
    assert np.array_equal(np.asarray(kept)[0], _stored())
