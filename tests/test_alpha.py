"""One alpha policy for every format (issue 12).

In rgb24, bgr24 and gray output a pixel is its STORED colour: alpha is dropped, never
composited over a background (what Pillow's convert("RGB"/"L") and OpenCV's imread
give); pix_fmt="rgba" keeps alpha. A GIF's transparent pixels are the transparent
index's palette colour (FFmpeg 5.1's decoder made them white: its trans_color option,
transparent white by default, is now set per file to that colour).

The matrix: format x pix_fmt against Pillow's convert(...) of the same file, on inputs
made here with Pillow (and ffmpeg for 16-bit RGBA). Tolerances: exact for lossless
rgb24/bgr24/rgba; gray within 1 level (swscale's BT.601 luma and Pillow's round
differently; it is a conversion, not alpha); lossy WebP with alpha (64x48, smooth): exact too
(libwebp decodes it, as it does for Pillow; gray within 1 like every format). In every format
rgb24 is exactly rgba's first three channels.

GIF whose first image is smaller than its logical screen: around the image, Pillow gives
the transparent index's colour when the image has one (we give the same, alpha 0); with
no transparent index, the GIF spec and FFmpeg give the background colour of the global
table, where Pillow gives palette index 0: we keep the background colour (the spec's;
PyAV agrees) and test it; with no global table either, transparent black.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch, smooth_rgb

H, W = 23, 37
PIX_FMTS = ["rgb24", "bgr24", "gray", "rgba"]


def _load(srcs, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    out = np_batch(spdl.io.load_image_batch(srcs, **kw))
    return out[..., 0] if out.ndim == 4 and out.shape[-1] == 1 else out


def _save(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _rgba(seed=0, smooth=False, w=W, h=H):
    """Colour with every kind of alpha: 0 (hidden colour), 255, and partial."""
    rng = np.random.RandomState(seed)
    rgb = smooth_rgb(w, h, seed) if smooth else rng.randint(0, 256, (h, w, 3), np.uint8)
    a = rng.choice(np.array([0, 0, 255, 128, 7], np.uint8), (h, w))
    if smooth:
        a = np.full((h, w), 255, np.uint8)
        a[3:9, 4:20], a[12:15] = 0, 100
    return np.dstack([rgb, a])


def _palette_image():
    return Image.fromarray(_rgba()[..., :3]).quantize(16)


def _inputs():
    rgba = _rgba()
    im = Image.fromarray(rgba, "RGBA")
    back = Image.fromarray(np.ascontiguousarray(rgba[::-1]), "RGBA")
    grey = Image.fromarray(rgba[..., 0] // 16 * 16)
    pal = _palette_image()
    return {
        "png-rgba": _save(im, "PNG"),
        "png-la": _save(Image.fromarray(rgba[..., [0, 3]], "LA"), "PNG"),
        "png-palette-trns-index": _save(pal, "PNG", transparency=3),
        "png-palette-trns-alphas": _save(pal, "PNG", transparency=bytes(range(0, 256, 16))),
        "png-grey-trns-key": _save(grey, "PNG", transparency=32),
        "png-rgb-trns-key": _save(Image.fromarray(rgba[..., :3] // 64 * 64), "PNG",
                                  transparency=(64, 128, 0)),
        "apng": _save(im, "PNG", save_all=True, append_images=[back]),
        "gif": _save(pal, "GIF", transparency=3),
        "webp-lossless": _save(im, "WEBP", lossless=True, exact=True),
        "webp-animated": _save(im, "WEBP", save_all=True, append_images=[back], lossless=True,
                               exact=True),
        "tiff-rgba": _save(im, "TIFF"),
    }


INPUTS = _inputs()


def _reference(data, pix_fmt):
    im = Image.open(io.BytesIO(data))
    im.seek(0)
    ref = np.asarray(im.convert({"rgb24": "RGB", "bgr24": "RGB", "gray": "L", "rgba": "RGBA"}[
        pix_fmt]))
    return ref[..., ::-1] if pix_fmt == "bgr24" else ref


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("pix_fmt", PIX_FMTS)
@pytest.mark.parametrize("name", list(INPUTS))
def test_stored_colour_matrix(name, pix_fmt):
    data = INPUTS[name]
    ours = _load([data], pix_fmt=pix_fmt)[0]
    ref = _reference(data, pix_fmt)
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= (1 if pix_fmt == "gray" else 0), (name, pix_fmt, diff.max())


@pytest.mark.parametrize("name", list(INPUTS))
def test_rgb_is_rgba_without_alpha(name):
    """rgb24/bgr24 are rgba's colour channels exactly: alpha dropped, nothing composited;
    and rgba's alpha is the file's."""
    data = INPUTS[name]
    rgba, rgb, bgr = (_load([data], pix_fmt=f)[0] for f in ("rgba", "rgb24", "bgr24"))
    np.testing.assert_array_equal(rgb, rgba[..., :3])
    np.testing.assert_array_equal(bgr, rgba[..., 2::-1])
    np.testing.assert_array_equal(rgba[..., 3], _reference(data, "rgba")[..., 3])


@pytest.mark.parametrize("pix_fmt", PIX_FMTS)
def test_lossy_webp_with_alpha(pix_fmt):
    rgba = _rgba(smooth=True, w=64, h=48)
    data = _save(Image.fromarray(rgba, "RGBA"), "WEBP", quality=90, exact=True)
    ours = _load([data], pix_fmt=pix_fmt)[0].astype(int)
    ref = _reference(data, pix_fmt).astype(int)
    if pix_fmt == "rgba":
        np.testing.assert_array_equal(ours[..., 3], ref[..., 3])   # alpha exact
        ours, ref = ours[..., :3], ref[..., :3]
    diff = np.abs(ours - ref)
    assert diff.max() <= (1 if pix_fmt == "gray" else 0), (diff.max(), diff.mean())
    hidden = rgba[..., 3] == 0
    if pix_fmt == "rgb24":  # the hidden pixels keep their (lossy) stored colour, not black/white
        assert np.abs(ours[hidden] - rgba[..., :3][hidden].astype(int)).mean() <= 6


def test_png_16bit_rgba(tmp_path):
    """16-bit RGBA (rgba64) PNG: each channel round(v * 255 / 65535), alpha dropped."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI to write a 16-bit RGBA PNG")
    rng = np.random.RandomState(3)
    a = rng.randint(0, 65536, (H, W, 4)).astype("<u2")
    a[..., 3] = rng.choice([0, 65535, 30000], (H, W))
    raw = tmp_path / "in.raw"
    raw.write_bytes(a.tobytes())
    png = tmp_path / "out.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                    "rgba64le", "-s", f"{W}x{H}", "-i", str(raw), str(png)], check=True)
    want = np.rint(a.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(_load([str(png)], pix_fmt="rgba")[0], want)
    np.testing.assert_array_equal(_load([str(png)], pix_fmt="rgb24")[0], want[..., :3])


# ---------------------------------------------------------------------------
# GIF: transparent index, image smaller than the screen, local colour tables

MAGENTA = (255, 0, 255)
PALETTE = [255, 0, 0, 0, 255, 0, *MAGENTA, 0, 0, 255]   # 0 red, 1 green, 2 magenta, 3 blue


def _gif(transparency=True, background=3, screen=(12, 8), offset=(2, 1), local=False):
    """A GIF of one 8x6 image at offset on a larger logical screen; index 2 (magenta) is
    the transparent one when transparency is set; background is the screen's index."""
    a = np.zeros((6, 8), np.uint8)
    a[:, :4] = 1
    a[2:4] = 2
    a[5, 5:] = 3
    im = Image.fromarray(a, "P")
    im.putpalette(PALETTE)
    d = bytearray(_save(im, "GIF", optimize=False,
                        **({"transparency": 2} if transparency else {})))
    assert d[10] & 0x80 and (d[10] & 7) == 1, "expected a 4-entry global table"
    table = bytes(d[13:25])
    assert table == bytes(PALETTE)
    d[6:8], d[8:10] = screen[0].to_bytes(2, "little"), screen[1].to_bytes(2, "little")
    d[11] = background
    i = 25
    while d[i] == 0x21:                   # extensions, then the image descriptor
        i += 2
        while d[i]:
            i += 1 + d[i]
        i += 1
    assert d[i] == 0x2C
    d[i + 1:i + 3], d[i + 3:i + 5] = offset[0].to_bytes(2, "little"), offset[1].to_bytes(2, "little")
    if local:  # the global table moves to the image's own table
        d[i + 9] |= 0x80 | 1
        d = d[:i + 10] + table + d[i + 10:]
        d = d[:13] + d[25:]
        d[10] &= ~0x80 & 0xFF
    return bytes(d), a


def _frame_mask(screen=(12, 8), offset=(2, 1)):
    m = np.zeros(screen[::-1], bool)
    m[offset[1]:offset[1] + 6, offset[0]:offset[0] + 8] = True
    return m


@pytest.mark.parametrize("local", [False, True], ids=["global-table", "local-table"])
def test_gif_transparent_pixels_are_the_palette_colour(local):
    data, idx = _gif(local=local)
    rgb = _load([data], pix_fmt="rgb24")[0]
    rgba = _load([data], pix_fmt="rgba")[0]
    pal = np.array(PALETTE, np.uint8).reshape(-1, 3)
    inside = _frame_mask()
    np.testing.assert_array_equal(rgb[inside].reshape(6, 8, 3), pal[idx])
    np.testing.assert_array_equal(rgb[~inside], np.tile(MAGENTA, ((~inside).sum(), 1)))
    np.testing.assert_array_equal(rgba[..., 3], np.where(
        inside & (np.pad(idx, ((1, 1), (2, 2))) != 2), 255, 0))
    for pix_fmt in PIX_FMTS:  # and Pillow agrees in every output
        diff = np.abs(_load([data], pix_fmt=pix_fmt)[0].astype(int) - _reference(data, pix_fmt))
        assert diff.max() <= (1 if pix_fmt == "gray" else 0), (pix_fmt, diff.max())
    assert (rgb != 255).any(axis=-1).all()  # nothing white


@pytest.mark.parametrize("background", [0, 1, 3])
def test_gif_without_transparency_around_a_small_image(background):
    """Around the first image, no transparent index: the background colour (the GIF spec,
    FFmpeg), opaque. Pillow gives palette index 0 there instead: we differ by choice."""
    data, idx = _gif(transparency=False, background=background)
    rgba = _load([data], pix_fmt="rgba")[0]
    pal = np.array(PALETTE, np.uint8).reshape(-1, 3)
    inside = _frame_mask()
    np.testing.assert_array_equal(rgba[inside][:, :3].reshape(6, 8, 3), pal[idx])
    np.testing.assert_array_equal(rgba[~inside][:, :3],
                                  np.tile(pal[background], ((~inside).sum(), 1)))
    assert (rgba[..., 3] == 255).all()
    ref = _reference(data, "rgb24")
    np.testing.assert_array_equal(rgba[inside][:, :3], ref[inside])   # the image: Pillow's


def test_gif_local_table_only_without_transparency():
    """No global table (so no background colour) and no transparent index: around the
    image, transparent black (FFmpeg would give transparent white)."""
    data, idx = _gif(transparency=False, local=True)
    rgba = _load([data], pix_fmt="rgba")[0]
    inside = _frame_mask()
    assert (rgba[~inside] == 0).all()
    np.testing.assert_array_equal(rgba[inside][:, :3].reshape(6, 8, 3),
                                  np.array(PALETTE, np.uint8).reshape(-1, 3)[idx])


def test_gif_trans_color_option_still_wins():
    """A caller's own trans_color decoder option is kept (FFmpeg's option, ARGB)."""
    data, idx = _gif()
    cfg = spdl.io.DecodeConfig(decoder_options={"trans_color": str(0x8000FF00)})
    rgba = _load([data], pix_fmt="rgba", decode_config=cfg)[0]
    assert (rgba[~_frame_mask()] == (0, 255, 0, 128)).all()


def test_gif_index_past_the_table_and_cut_headers():
    """A transparent index past the colour table: black (alpha 0); data cut around the
    descriptor: no crash, a DecodeError."""
    data, _ = _gif()
    i = data.index(b"\x21\xf9\x04")
    past = bytearray(data)
    past[i + 6] = 200                      # index 200 of a 4-entry table
    rgba = _load([bytes(past)], pix_fmt="rgba")[0]
    assert (rgba[~_frame_mask()] == 0).all()
    for cut in range(13, i + 12):
        with pytest.raises(spdl.io.BatchLoadError) as e:
            spdl.io.load_image_batch([data[:cut]], width=None, height=None)
        assert isinstance(e.value.errors[0], (spdl.io.DecodeError, spdl.io.UnsupportedFormatError))


def test_resized_batch_keeps_the_policy():
    """Resizing works on the stored colours too: a batch of every format resized to one
    size, rgb24, is the rgba batch's colour channels."""
    srcs = list(INPUTS.values())
    rgba = _load(srcs, width=20, height=16, pix_fmt="rgba")
    rgb = _load(srcs, width=20, height=16, pix_fmt="rgb24")
    np.testing.assert_array_equal(rgb, rgba[..., :3])


# ---------------------------------------------------------------------------
# The GPU loader: non-JPEG inputs take the CPU path (spdl/io/_nvjpeg_decode.pyx classify:
# anything not starting FF D8 FF is G_CPU), so the same policy; checked on the fake CUDA.

FAKE_ALPHA = r"""import io, os, sys
import numpy as np
FAKE = sys.argv[1]
import spdl.io
from spdl.io import CUDAConfig, _nvjpeg_batch, _testing
_testing.use_libraries(FAKE, driver=os.path.join(FAKE, "drv", "libcuda.so.1"))
from PIL import Image
srcs = [open(os.path.join(FAKE, f"in{i}"), "rb").read() for i in range(int(sys.argv[2]))]
b = io.BytesIO(); Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(b, "JPEG"); srcs.append(b.getvalue())
for pix_fmt in ("rgb24", "rgba"):
    kw = dict(width=20, height=16, pix_fmt=pix_fmt)
    gpu = _testing.to_host(_nvjpeg_batch.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(0), **kw))
    cpu = spdl.io.to_numpy(spdl.io.load_image_batch(srcs, **kw))
    np.testing.assert_array_equal(gpu[:-1], cpu[:-1])
print("FAKE ALPHA OK")
"""


def test_gpu_loader_takes_the_cpu_path_for_alpha_formats(tmp_path):
    from test_cuda import _run_on_fake_cuda

    srcs = [INPUTS[k] for k in ("png-rgba", "gif", "webp-lossless", "webp-animated")]
    for i, s in enumerate(srcs):
        (tmp_path / f"in{i}").write_bytes(s)
    r = _run_on_fake_cuda(tmp_path, FAKE_ALPHA, str(len(srcs)))
    assert r.stdout.strip().endswith("FAKE ALPHA OK")
