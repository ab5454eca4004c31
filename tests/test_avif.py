"""AVIF still images, decoded by libavif (issue 12).

Every input is made here from Pillow-written PNGs by avifenc (libavif-bin; the
tests skip without it): lossless files must give the source's pixels exactly,
lossy ones the pixels of avifdec (libavif's own tool, the reference decoder)
within a stated tolerance. irot/imir turn the image as EXIF orientation does
(the displayed image; apply_orientation=False gives the stored one), a valid
clean aperture (clap) crops it, alpha follows the loader's policy (rgba keeps
it, rgb24 gives the stored colour). Hostile files: truncated, lying sizes, pure
image sequences, junk after the ftyp.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch, smooth_rgb, synth_rgb


def _tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"no {name} (libavif-bin) to make AVIF inputs")
    return name


def _avifenc(tmp_path, src, name, *args):
    """src (an array, or a list of arrays: an image sequence) as an AVIF file, by avifenc."""
    frames = src if isinstance(src, list) else [src]
    pngs = []
    for i, a in enumerate(frames):
        pngs.append(tmp_path / f"{name}.{i}.png")
        Image.fromarray(a).save(pngs[-1])
    out = tmp_path / f"{name}.avif"
    subprocess.run([_tool("avifenc"), "-s", "10", "-j", "1", *args, *map(str, pngs), str(out)],
                   check=True, capture_output=True)
    return out


def _avifdec(tmp_path, avif, depth=8):
    """libavif's own decode of avif (stored orientation, whole image), as an array."""
    out = tmp_path / (avif.stem + ".dec.png")
    subprocess.run([_tool("avifdec"), "-d", str(depth), str(avif), str(out)], check=True,
                   capture_output=True)
    return np.asarray(Image.open(out))


def _load(src, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    return np_batch(spdl.io.load_image_batch([src], **kw))[0]


def _decode(src, decode_config=None):
    """demux + decode, which raise the typed error of one image."""
    return spdl.io.decode_packets(spdl.io.demux_image(src), decode_config=decode_config)


# ---------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_lossless_exact(tmp_path, as_bytes):
    src = synth_rgb(67, 45, seed=3)
    path = _avifenc(tmp_path, src, "lossless", "-l")
    p = spdl.io.demux_image(path.read_bytes() if as_bytes else path)
    assert (p.codec, p.format) == ("av1", "avif")
    got = _load(path.read_bytes() if as_bytes else str(path), pix_fmt="rgb24")
    np.testing.assert_array_equal(got, src)


def test_path_and_bytes_identical(tmp_path):
    path = _avifenc(tmp_path, smooth_rgb(80, 60, seed=1), "lossy", "-y", "420")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"),
                                  _load(path.read_bytes(), pix_fmt="rgb24"))


# Lossy files against avifdec's 8-bit PNG. Both are libavif's YUV -> RGB conversion;
# above 8 bits the loader keeps 16 bits (rgb48) and rounds to 8 once, at the end, where
# avifdec rounds in libavif: at most 1 apart.
LOSSY = [(depth, yuv) for depth in (8, 10, 12) for yuv in ("420", "444", "400")]


@pytest.mark.parametrize("depth,yuv", LOSSY, ids=[f"{d}bit-{y}" for d, y in LOSSY])
def test_lossy_matches_avifdec(tmp_path, depth, yuv):
    src = smooth_rgb(70, 50, seed=depth)
    path = _avifenc(tmp_path, src, f"q{depth}{yuv}", "-d", str(depth), "-y", yuv)
    ref = _avifdec(tmp_path, path)
    if ref.ndim == 2:
        ref = np.stack([ref] * 3, axis=-1)
    got = _load(str(path), pix_fmt="rgb24")
    assert got.shape == ref.shape[:2] + (3,)
    diff = np.abs(got.astype(int) - ref[..., :3].astype(int))
    assert diff.max() <= (0 if depth == 8 else 1), diff.max()
    frames = spdl.io.decode_packets(spdl.io.demux_image(str(path)))
    assert frames.pix_fmt == ("rgb24" if depth == 8 else "rgb48le")  # precision kept
    if yuv == "400":
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()


def test_ten_bit_keeps_precision(tmp_path):
    """A 10-bit AVIF to gray16: the 16-bit values libavif gives, not 8-bit ones widened."""
    src = smooth_rgb(64, 40, seed=5)
    path = _avifenc(tmp_path, src, "ten", "-d", "10", "-y", "444")
    ref = _avifdec(tmp_path, path, depth=16)
    got = _load(str(path), pix_fmt="gray16")
    assert got.dtype == np.uint16
    assert len(np.unique(got % 257)) > 1  # not 8-bit values times 257


def test_alpha(tmp_path):
    """rgba keeps alpha; rgb24 is every pixel's stored colour, also where alpha is 0."""
    rgb = synth_rgb(48, 40, seed=7)
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    alpha[:10] = 0
    src = np.dstack([rgb, alpha])
    path = _avifenc(tmp_path, src, "alpha", "-l")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgba"), src)
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"), rgb)


def test_lossy_alpha_matches_avifdec(tmp_path):
    src = np.dstack([smooth_rgb(50, 30, seed=2), np.full((30, 50), 128, np.uint8)])
    path = _avifenc(tmp_path, src, "qalpha", "-y", "420")
    ref = _avifdec(tmp_path, path)
    assert ref.shape[-1] == 4
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgba"), ref)


def test_resize_as_png_with_the_same_pixels(tmp_path):
    """After decoding, an AVIF takes the pipeline every format takes: resized like a PNG
    holding the same pixels, byte for byte."""
    src = synth_rgb(90, 70, seed=4)
    path = _avifenc(tmp_path, src, "resize", "-l")
    png = tmp_path / "same.png"
    Image.fromarray(src).save(png)
    for kw in (dict(width=45, height=35), dict(width=128, height=64, scale_mode="pad")):
        np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24", **kw),
                                      _load(str(png), pix_fmt="rgb24", **kw))


def test_ffmpeg_libaom_still_picture(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    src = smooth_rgb(64, 48, seed=8)
    png = tmp_path / "src.png"
    Image.fromarray(src).save(png)
    out = tmp_path / "ffmpeg.avif"
    r = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(png), "-c:v", "libaom-av1",
                        "-still-picture", "1", "-cpu-used", "8", str(out)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"ffmpeg cannot write a still AVIF here: {r.stderr.decode()[-200:]}")
    ref = _avifdec(tmp_path, out)
    got = _load(str(out), pix_fmt="rgb24")
    np.testing.assert_array_equal(got, ref[..., :3])


# ---------------------------------------------------------------------------
# As the person sees it: irot/imir, clap
# ---------------------------------------------------------------------------


def _displayed(a, angle, mode):
    """The image a viewer shows: irot (angle quarter turns anticlockwise), then imir
    (mode 0: top and bottom exchanged; 1: left and right)."""
    a = np.rot90(a, angle)
    if mode == 0:
        a = a[::-1]
    elif mode == 1:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


TRANSFORMS = [(angle, mode) for angle in range(4) for mode in (None, 0, 1)]


@pytest.mark.parametrize("angle,mode", TRANSFORMS,
                         ids=[f"irot{a}-imir{m}" for a, m in TRANSFORMS])
def test_irot_imir(tmp_path, angle, mode):
    src = synth_rgb(40, 24, seed=angle)
    args = ["-l", "--irot", str(angle)] + ([] if mode is None else ["--imir", str(mode)])
    path = _avifenc(tmp_path, src, "t", *args)
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"),
                                  _displayed(src, angle, mode))
    stored = _load(str(path), pix_fmt="rgb24",
                   decode_config=spdl.io.DecodeConfig(apply_orientation=False))
    np.testing.assert_array_equal(stored, src)


def test_irot_resize_in_displayed_pixels(tmp_path):
    """width and height are those of the displayed (turned) image: like a PNG of the
    displayed pixels resized (the resize runs in the stored orientation, so the two
    filter passes swap: within 2 levels, 0.5 on average, as test_orientation allows)."""
    src = synth_rgb(60, 30, seed=9)
    path = _avifenc(tmp_path, src, "turned", "-l", "--irot", "1")
    png = tmp_path / "displayed.png"
    Image.fromarray(_displayed(src, 1, None)).save(png)
    kw = dict(width=15, height=24, pix_fmt="rgb24")
    got, ref = _load(str(path), **kw).astype(int), _load(str(png), **kw).astype(int)
    assert got.shape == ref.shape == (24, 15, 3)
    assert np.abs(got - ref).max() <= 2 and np.abs(got - ref).mean() <= 0.5


def test_clap_crops(tmp_path):
    src = synth_rgb(64, 48, seed=11)
    path = _avifenc(tmp_path, src, "clap", "-l", "--crop", "8,4,40,30")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"), src[4:34, 8:48])


def test_invalid_clap_refused(tmp_path):
    """A clean aperture reaching outside the image: libavif's strict check refuses it."""
    data = bytearray(_avifenc(tmp_path, synth_rgb(64, 48), "badclap", "-l", "--crop",
                              "8,4,40,30").read_bytes())
    off, _ = _box(bytes(data), b"meta", b"iprp", b"ipco", b"clap")
    data[off + 8:off + 12] = struct.pack(">I", 400)  # widthN
    with pytest.raises(spdl.io.DecodeError, match="clap|crop"):
        _decode(bytes(data))


def test_clap_then_irot(tmp_path):
    src = synth_rgb(64, 48, seed=12)
    path = _avifenc(tmp_path, src, "clapirot", "-l", "--crop", "8,4,40,30", "--irot", "3")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"),
                                  _displayed(src[4:34, 8:48], 3, None))


def _pillow_avif(a, **kw):
    """a as an AVIF written by Pillow (11.3+; its own libavif), or skip."""
    import io

    b = io.BytesIO()
    try:
        Image.fromarray(a).save(b, "AVIF", **kw)
    except (KeyError, OSError, ValueError) as e:
        pytest.skip(f"this Pillow cannot write AVIF: {e}")
    return b.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_pillow_exif_orientation_as_irot_imir(orientation):
    """Pillow writes an EXIF orientation as irot/imir (and reads them back the same way):
    the loader shows what Pillow shows, pixel for pixel (both are libavif)."""
    import io

    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _pillow_avif(smooth_rgb(48, 32, seed=orientation), quality=90, exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(_load(data, pix_fmt="rgb24"), ref)


def test_grid(tmp_path):
    """A grid image (2x2 cells, each its own AV1 item) is the whole image."""
    src = synth_rgb(160, 128, seed=13)
    path = _avifenc(tmp_path, src, "grid", "-l", "--grid", "2x2")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"), src)


def test_premultiplied_alpha_matches_avifdec(tmp_path):
    """Colour stored premultiplied by alpha comes out straight, as avifdec gives it."""
    alpha = np.tile(np.linspace(30, 255, 40).astype(np.uint8), (30, 1))
    src = np.dstack([smooth_rgb(40, 30, seed=3), alpha])
    path = _avifenc(tmp_path, src, "premul", "--premultiply", "-y", "444")
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgba"), _avifdec(tmp_path, path))


def test_sequence_with_primary_item_gives_it(tmp_path):
    """avifenc writes an image sequence ('avis') with the first frame as its primary
    item: that still image is decoded."""
    frames = [synth_rgb(32, 24, seed=s) for s in (1, 2, 3)]
    path = _avifenc(tmp_path, frames, "seq", "-l")
    assert path.read_bytes()[8:12] == b"avis"
    np.testing.assert_array_equal(_load(str(path), pix_fmt="rgb24"), frames[0])


def test_in_a_batch_on_threads(tmp_path):
    srcs = [synth_rgb(32, 24, seed=s) for s in range(6)]
    paths = [str(_avifenc(tmp_path, a, f"b{i}", "-l")) for i, a in enumerate(srcs)]
    png = tmp_path / "x.png"
    Image.fromarray(srcs[0]).save(png)
    got = np_batch(spdl.io.load_image_batch(paths + [str(png)], width=None, height=None,
                                            pix_fmt="rgb24", num_threads=2))
    np.testing.assert_array_equal(got, np.stack(srcs + [srcs[0]]))


# ---------------------------------------------------------------------------
# Hostile and refused files
# ---------------------------------------------------------------------------


def _boxes(data, start, end):
    """(type, offset, size) of the boxes in data[start:end] (32-bit sizes)."""
    out = []
    while start + 8 <= end:
        size, = struct.unpack(">I", data[start:start + 4])
        out.append((data[start + 4:start + 8], start, size))
        start += size
    return out


def _box(data, *path):
    """(offset, size) of the box at path (meta's children after its full-box header)."""
    start, end = 0, len(data)
    for name in path:
        off, size = next((o, s) for t, o, s in _boxes(data, start, end) if t == name)
        start, end = off + 8 + (4 if name == b"meta" else 0), off + size
    return off, size


def test_truncated(tmp_path):
    data = _avifenc(tmp_path, synth_rgb(64, 48), "cut", "-l").read_bytes()
    for n in (len(data) - 10, len(data) // 2, 60):
        with pytest.raises((spdl.io.DecodeError, spdl.io.UnsupportedFormatError)):
            _decode(data[:n])


def test_huge_header_size_refused_before_decoding(tmp_path):
    data = bytearray(_avifenc(tmp_path, synth_rgb(64, 48), "huge", "-l").read_bytes())
    off, _ = _box(bytes(data), b"meta", b"iprp", b"ipco", b"ispe")
    data[off + 12:off + 20] = struct.pack(">II", 60000, 60000)
    with pytest.raises(spdl.io.ImageTooLargeError, match="60000x60000"):
        _decode(bytes(data))
    # and one within libavif's limits, over max_pixels
    data[off + 12:off + 20] = struct.pack(">II", 64, 48)
    with pytest.raises(spdl.io.ImageTooLargeError, match="max_pixels"):
        _decode(bytes(data), decode_config=spdl.io.DecodeConfig(max_pixels=1000))
    assert _load(bytes(data)).shape == (48, 64, 3)


def test_lying_small_header_size(tmp_path):
    """ispe smaller than the AV1 data: libavif refuses the mismatch."""
    data = bytearray(_avifenc(tmp_path, synth_rgb(64, 48), "liar", "-l").read_bytes())
    off, _ = _box(bytes(data), b"meta", b"iprp", b"ipco", b"ispe")
    data[off + 12:off + 20] = struct.pack(">II", 8, 8)
    with pytest.raises((spdl.io.DecodeError, spdl.io.ImageTooLargeError)):
        _decode(bytes(data), decode_config=spdl.io.DecodeConfig(max_pixels=100))


def test_pure_sequence_refused(tmp_path):
    """An image sequence with no still image (its meta box gone): refused, saying so."""
    data = bytearray(_avifenc(tmp_path, [synth_rgb(32, 24, seed=s) for s in (1, 2)], "pure",
                              "-l").read_bytes())
    off, _ = _box(bytes(data), b"meta")
    data[off + 4:off + 8] = b"free"
    with pytest.raises(spdl.io.UnsupportedFormatError,
                       match="AVIF image sequence: only still AVIF images are decoded"):
        _decode(bytes(data))


def test_junk_after_ftyp(tmp_path):
    ftyp = struct.pack(">I", 28) + b"ftypavif" + b"\0\0\0\0" + b"avifmif1miaf"
    rng = np.random.default_rng(0)
    for n in (0, 7, 100, 5000):
        with pytest.raises(spdl.io.DecodeError):
            _decode(ftyp + rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def test_heif_and_mp4_refused_with_their_names():
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 64
    with pytest.raises(spdl.io.UnsupportedFormatError, match="HEIF/HEIC is not supported"):
        _decode(heic)
    mp4 = struct.pack(">I", 24) + b"ftypisom" + b"\0\0\2\0" + b"isomiso2" + b"\0" * 64
    with pytest.raises(spdl.io.UnsupportedFormatError, match="MP4"):
        _decode(mp4)


def test_mutated_files_never_crash(tmp_path):
    """Bytes flipped all over a small AVIF: each load decodes or raises an spdl error."""
    data = _avifenc(tmp_path, synth_rgb(32, 24), "mut", "-y", "420").read_bytes()
    rng = np.random.default_rng(1)
    for _ in range(200):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), rng.integers(1, 6)):
            b[pos] = rng.integers(0, 256)
        try:
            _decode(bytes(b))
        except spdl.io.SpdlIOError:
            pass
