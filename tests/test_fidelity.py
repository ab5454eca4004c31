"""Pixels as the person sees them, and refusals that say why (issue 12).

Full-range grey: grey has no chroma and the image formats that carry it (PNG, PGM,
TIFF, JPEG 2000) leave the range unset or say full; a sample v of an image whose
maximum is m becomes round(v * 255 / m) in every 8-bit output (rgb24, gray), for
8 to 16 bits. Every input is made here: Pillow, our own PGM writer, the ffmpeg CLI
and, for 9 to 16-bit JPEG 2000, opj_compress (libopenjp2-tools; skipped without it).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch


def _load(srcs, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    return np_batch(spdl.io.load_image_batch(srcs, **kw))


# ---------------------------------------------------------------------------
# Full-range grey
# ---------------------------------------------------------------------------


def _ramp(bits):
    """Every value 0..2**bits - 1, in rows of 64 (at least 64 rows: the JPEG 2000
    encoders want room for their resolution levels)."""
    mx = (1 << bits) - 1
    return np.resize(np.arange(mx + 1), (max(64, (mx + 1) // 64), 64)), mx


def _pgm(path, a, mx):
    body = a.astype(">u2" if mx > 255 else "u1").tobytes()
    path.write_bytes(b"P5\n%d %d\n%d\n" % (a.shape[1], a.shape[0], mx) + body)


def _ffmpeg(src, dst, *args):
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst)],
                   check=True)


def _grey_file(tmp_path, kind, bits):
    """(path, samples, maximum) of a grey image holding every value of its depth."""
    a, mx = _ramp(bits)
    pgm = tmp_path / "ramp.pgm"
    _pgm(pgm, a, mx)
    path = tmp_path / f"ramp.{kind}"
    if kind == "pgm":
        path = pgm
    elif kind == "png":
        Image.fromarray(a.astype(np.uint8 if bits == 8 else np.uint16)).save(path)
    elif kind == "tif":
        _ffmpeg(pgm, path, "-pix_fmt", "gray" if bits == 8 else "gray16le")
    elif kind == "j2k" and bits == 8:
        _ffmpeg(pgm, path, "-c:v", "jpeg2000", "-pred", "dwt53", "-format", "j2k",
                "-pix_fmt", "gray")
    elif kind == "j2k":  # FFmpeg's encoder is not lossless at 16 bits and has no 9-12
        if shutil.which("opj_compress") is None:
            pytest.skip("no opj_compress (libopenjp2-tools) to write a 9-16 bit JPEG 2000")
        subprocess.run(["opj_compress", "-i", str(pgm), "-o", str(path)], check=True,
                       capture_output=True)
    return path, a, mx


GREY = [("png", 8), ("png", 16), ("pgm", 8), ("pgm", 9), ("pgm", 10), ("pgm", 12), ("pgm", 16),
        ("tif", 8), ("tif", 16), ("j2k", 8), ("j2k", 9), ("j2k", 10), ("j2k", 12), ("j2k", 16)]


@pytest.mark.parametrize("kind,bits", GREY)
@pytest.mark.parametrize("scale_algo", ["bicubic", "neighbor"])
def test_grey_is_full_range(tmp_path, kind, bits, scale_algo):
    """0..m maps to 0..255 as round(v * 255 / m), exactly, through our resampler (bicubic)
    and through swscale (neighbor), from the path and from the bytes alike (JPEG 2000 of
    9 to 15 bits too: FFmpeg's decoder hands those over as v << (16 - bits) in a 16-bit
    frame, and the decoder's bits_per_raw_sample restores the depth)."""
    path, a, mx = _grey_file(tmp_path, kind, bits)
    want = (a * 510 + mx) // (2 * mx)
    tol = 0
    data = path.read_bytes()
    for pix_fmt, ch in (("rgb24", 3), ("gray", 1)):
        out = _load([str(path), data], pix_fmt=pix_fmt, scale_algo=scale_algo).astype(int)
        assert out.shape == (2, *a.shape, ch)
        np.testing.assert_array_equal(out[0], out[1])
        for c in range(ch):
            err = np.abs(out[0, ..., c] - want)
            assert err.max() <= tol, (kind, bits, pix_fmt, err.max(), np.count_nonzero(err))


def test_grey16_0x1234_is_18(tmp_path):
    """The issue's case: a 16-bit grey TIFF holding 0x1234 everywhere (every peer gives
    0x12 = 18; it loaded as 3 in rgb24)."""
    png = tmp_path / "c.png"
    Image.fromarray(np.full((16, 24), 0x1234, np.uint16)).save(png)
    tif = tmp_path / "c.tif"
    _ffmpeg(png, tif, "-pix_fmt", "gray16le")
    for pix_fmt in ("rgb24", "gray", "rgba", "bgr24"):
        out = _load([str(tif), str(png)], pix_fmt=pix_fmt)
        assert (out[..., :3] == 18).all(), (pix_fmt, np.unique(out))


@pytest.mark.parametrize("scale_algo", ["bicubic", "bilinear", "area", "neighbor"])
def test_grey_resized_stays_full_range(tmp_path, scale_algo):
    """Resizing keeps the levels: flat 16-bit grey stays round(v * 255 / 65535), black
    stays 0 and white 255, whatever the filter."""
    a = np.zeros((60, 90), np.uint16)
    a[:, 30:60] = 0x8000
    a[:, 60:] = 0xFFFF
    path = tmp_path / "bands.png"
    Image.fromarray(a).save(path)
    out = _load([str(path)], width=45, height=30, pix_fmt="rgb24", scale_mode="stretch",
                scale_algo=scale_algo)[0]
    assert (out[:, :12] == 0).all() and (out[:, 18:27] == 128).all() and (out[:, 33:] == 255).all()


def test_grey_alpha16_to_rgba(tmp_path):
    """16-bit grey with alpha: grey and alpha both rounded to 8 bits."""
    g = np.resize(np.arange(0, 65536, 7), (64, 64)).astype(np.uint16)
    al = g[::-1].copy()
    path = tmp_path / "la16.png"
    la = np.stack([g, al], -1)
    # Pillow cannot write LA;16: go through ffmpeg from raw samples
    raw = tmp_path / "la16.raw"
    raw.write_bytes(la.astype("<u2").tobytes())
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "ya16le",
                    "-s", "64x64", "-i", str(raw), "-pix_fmt", "ya16be", str(path)], check=True)
    out = _load([str(path)], pix_fmt="rgba").astype(int)[0]
    want_g = (g.astype(int) * 510 + 65535) // 131070
    want_a = (al.astype(int) * 510 + 65535) // 131070
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], want_g)
    np.testing.assert_array_equal(out[..., 3], want_a)


_TUPLTYPE = {1: b"GRAYSCALE", 2: b"GRAYSCALE_ALPHA", 3: b"RGB", 4: b"RGB_ALPHA"}


def _opj(tmp_path, samples, bits):
    """A JPEG 2000 (lossless, opj_compress) of samples (h, w, components), and the
    samples opj_decompress reads back from it (h, w, components). Written from a PAM
    (8 to 16 bits), or raw samples below 8 bits (a PAM's maxval under 255 gives 8)."""
    if shutil.which("opj_compress") is None or shutil.which("opj_decompress") is None:
        pytest.skip("no opj_compress/opj_decompress (libopenjp2-tools)")
    h, w, nc = samples.shape
    dt = "u1" if bits <= 8 else "<u2"
    j2k, back = tmp_path / "x.j2k", tmp_path / "back.rawl"
    if bits >= 8:
        src, args = tmp_path / "in.pnm", []
        src.write_bytes(b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %d\nTUPLTYPE %s\nENDHDR\n"
                        % (w, h, nc, (1 << bits) - 1, _TUPLTYPE[nc])
                        + samples.astype(">u2" if bits > 8 else "u1").tobytes())
    else:
        src, args = tmp_path / "in.rawl", ["-F", f"{w},{h},{nc},{bits},u"]
        src.write_bytes(samples.transpose(2, 0, 1).astype(dt).tobytes())
    subprocess.run(["opj_compress", "-i", str(src), "-o", str(j2k), "-n", "3", *args],
                   check=True, capture_output=True)
    subprocess.run(["opj_decompress", "-i", str(j2k), "-o", str(back)], check=True,
                   capture_output=True)
    ref = np.frombuffer(back.read_bytes(), dt).reshape(nc, h, w).transpose(1, 2, 0)
    return j2k, ref.astype(int)


# (opj_compress refuses the raw RGBA samples of 4 bits that the seed gives)
@pytest.mark.parametrize("nc,bits", [(nc, b) for nc in (1, 2, 3, 4)
                                     for b in (4, 8, 9, 10, 12, 14, 16) if (nc, b) != (4, 4)])
def test_jpeg2000_depths_match_opj_decompress(tmp_path, nc, bits):
    """JPEG 2000 grey, grey+alpha, RGB and RGBA of 4 to 16 bits (FFmpeg gives gray8/ya8/
    rgb24/rgba below 9 bits, shifted up; gray16/rgb48/rgba64 shifted up and ya16 not,
    above): every 8-bit output holds round(v * 255 / m) of opj_decompress's samples v,
    exactly (alpha too; rgb24 and bgr24 drop it, gray only from grey)."""
    mx = (1 << bits) - 1
    rng = np.random.default_rng(bits * 10 + nc)
    a = rng.integers(0, mx + 1, (37, 23, nc))
    a[0, :, :] = mx
    a[1, :, :] = 0
    j2k, ref = _opj(tmp_path, a, bits)
    np.testing.assert_array_equal(ref, a)  # lossless: the reference decoder agrees
    want = (ref * 510 + mx) // (2 * mx)
    colour = want[..., :3] if nc >= 3 else np.repeat(want[..., :1], 3, -1)
    alpha = want[..., nc - 1] if nc in (2, 4) else np.full(a.shape[:2], 255)
    cases = {"rgb24": colour, "bgr24": colour[..., ::-1],
             "rgba": np.concatenate([colour, alpha[..., None]], -1)}
    if nc <= 2:
        cases["gray"] = want[..., :1]
    for pix_fmt, exp in cases.items():
        for algo in ("bicubic", "neighbor"):
            out = _load([str(j2k)], pix_fmt=pix_fmt, scale_algo=algo).astype(int)[0]
            err = np.abs(out - exp)
            assert err.max() == 0, (pix_fmt, algo, err.max(), np.count_nonzero(err))


@pytest.mark.parametrize("fmt", ["rgb48be", "rgba64be"])
def test_png16_colour_rounds(tmp_path, fmt):
    """16-bit RGB(A) PNG: each sample becomes round(v * 255 / 65535) (swscale sent
    these through YUV, up to 2 levels off); Pillow and OpenCV keep the high byte, at
    most 1 below."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    nc = 4 if fmt == "rgba64be" else 3
    a = np.random.default_rng(3).integers(0, 65536, (23, 37, nc))
    raw = tmp_path / "c.raw"
    raw.write_bytes(a.astype("<u2").tobytes())
    path = tmp_path / "c16.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                    fmt[:-2] + "le", "-s", "37x23", "-i", str(raw), "-pix_fmt", fmt, str(path)],
                   check=True)
    want = (a * 510 + 65535) // 131070
    rgba = np.concatenate([want[..., :3], want[..., 3:] if nc == 4 else
                           np.full((23, 37, 1), 255)], -1)
    for pix_fmt, exp in (("rgb24", want[..., :3]), ("bgr24", want[..., 2::-1]), ("rgba", rgba)):
        for algo in ("bicubic", "neighbor"):
            out = _load([str(path)], pix_fmt=pix_fmt, scale_algo=algo).astype(int)[0]
            np.testing.assert_array_equal(out, exp, err_msg=f"{pix_fmt} {algo}")
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), a[..., :3] >> 8)


# ---------------------------------------------------------------------------
# A JPEG whose scans are complete and whose end-of-image marker is missing
# ---------------------------------------------------------------------------

EOI = b"\xff\xd9"


def _jpeg(tmp_path, kind):
    """(bytes, pixels of the whole file) of a JPEG of the given kind."""
    from _util import synth_rgb
    a = synth_rgb(203, 150, seed=5)
    bio = io.BytesIO()
    if kind == "gray":
        Image.fromarray(a).convert("L").save(bio, "JPEG", quality=90)
    elif kind == "cmyk":
        Image.fromarray(a).convert("CMYK").save(bio, "JPEG", quality=90)
    else:
        Image.fromarray(a).save(bio, "JPEG", quality=90, progressive=kind == "progressive",
                                subsampling=0 if kind == "444" else 2)
    data = bio.getvalue()
    if kind in ("restart", "multiscan"):
        if shutil.which("jpegtran") is None:
            pytest.skip("no jpegtran (libjpeg-turbo-progs)")
        src = tmp_path / "src.jpg"
        src.write_bytes(data)
        args = ["-restart", "1"]
        if kind == "multiscan":  # sequential, one scan per component (non-interleaved)
            script = tmp_path / "scans.txt"
            script.write_text("0;\n1;\n2;\n")
            args = ["-scans", str(script)]
        data = subprocess.run(["jpegtran", *args, str(src)], check=True,
                              capture_output=True).stdout
    assert data.endswith(EOI)
    return data, _load([data])[0]


def _markers(data, code):
    """Offsets of the markers FF code in data (outside entropy-coded data they are
    exact; inside it FF is always stuffed, so none are found there)."""
    return [i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == code]


JPEG_KINDS = ["420", "444", "progressive", "gray", "cmyk", "restart", "multiscan"]


@pytest.mark.parametrize("kind", JPEG_KINDS)
def test_jpeg_without_eoi_loads(tmp_path, kind):
    """EOI missing, or only its second byte: the same pixels as the whole file, from
    the bytes and the path, resized too; the caller's bytes are left as they were."""
    data, full = _jpeg(tmp_path, kind)
    path = tmp_path / "noeoi.jpg"
    for cut in (data[:-2], data[:-1]):
        keep = bytes(cut)
        path.write_bytes(cut)
        out = _load([cut, str(path)])
        np.testing.assert_array_equal(out[0], full)
        np.testing.assert_array_equal(out[1], full)
        assert cut == keep
        small = _load([cut, data], width=64, height=48, scale_mode="stretch")
        np.testing.assert_array_equal(small[0], small[1])


def _refused(data):
    with pytest.raises(spdl.io.BatchLoadError) as e:
        spdl.io.load_image_batch([data], width=None, height=None)
    assert isinstance(e.value.errors[0], spdl.io.DecodeError), e.value


@pytest.mark.parametrize("kind", JPEG_KINDS)
def test_jpeg_cut_in_its_data_is_refused(tmp_path, kind):
    """Cut inside the entropy-coded data (the last bytes of the last scan, and further
    in): still a DecodeError, never a concealed picture."""
    data, _ = _jpeg(tmp_path, kind)
    last_sos = _markers(data, 0xDA)[-1]
    cuts = list(range(3, 12)) + [len(data) - last_sos - 20, (len(data) - last_sos) // 2]
    cuts += [len(data) // 3, len(data) // 2]
    for c in cuts:
        _refused(data[:-c])


@pytest.mark.parametrize("kind", ["progressive", "multiscan"])
def test_jpeg_cut_between_scans_is_refused(tmp_path, kind):
    """Cut where a scan ends, before the next scan's tables or header: every scan there
    is whole, but not every component or coefficient is coded: a DecodeError."""
    data, _ = _jpeg(tmp_path, kind)
    sos = _markers(data, 0xDA)
    assert len(sos) >= 3
    boundaries = sos[1:] + [i for i in _markers(data, 0xC4) if i > sos[0]]
    for b in boundaries:
        _refused(data[:b])


# ---------------------------------------------------------------------------
# Refusals say what the input looked like and why it is refused
# ---------------------------------------------------------------------------


def _pil(fmt, frames=1, **kw):
    a = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ims = [Image.fromarray(a), Image.fromarray(255 - a)][:frames]
    bio = io.BytesIO()
    if frames > 1:
        kw.update(save_all=True, append_images=ims[1:], duration=100)
    ims[0].save(bio, fmt, **kw)
    return bio.getvalue()


def _video(tmp_path, ext, codec=("-c:v", "mjpeg")):
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    out = tmp_path / f"v.{ext}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=32x32:rate=5", "-frames:v", "3", *codec, str(out)], check=True)
    return out.read_bytes()


def _box(brand):
    """An ISO-BMFF file's first box, enough to be recognised (nothing decodes it)."""
    return (b"\x00\x00\x00\x1cftyp" + brand + b"\x00\x00\x00\x00" + brand + b"mif1miaf"
            + b"\x00\x00\x00\x08free")


REFUSALS = {
    "avis": (lambda p: _box(b"avis"), "AVIF image sequence"),  # (stills: test_avif)
    "heic": (lambda p: _box(b"heic"), "looks like HEIF/HEIC (ftyp heic)"),
    "ico_too_many": (lambda p: b"\x00\x00\x01\x00\x01\x04" + b"\x10\x10\x00\x00" * 4 * 300,
                     "looks like an ICO/CUR with more images than any icon has"),
    "pdf": (lambda p: _pil("PDF"), "looks like a PDF document (%PDF-)"),
    "svg": (lambda p: b'\xef\xbb\xbf\n <svg xmlns="http://www.w3.org/2000/svg"/>',
            "looks like SVG/XML text (<svg "),
    "xml_svg": (lambda p: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
                "looks like SVG/XML text (<?xml)"),
    "html": (lambda p: b"<!DOCTYPE html><html><body><img src=x></body></html>",
             "looks like an HTML page"),
    "mp4": (lambda p: _video(p, "mp4"), "looks like an MP4/QuickTime file (ftyp isom)"),
    "mov": (lambda p: _video(p, "mov"), "looks like an MP4/QuickTime file (ftyp qt"),
    "mkv": (lambda p: _video(p, "mkv"), "looks like a Matroska/WebM file (EBML header)"),
    "avi": (lambda p: _video(p, "avi"), "looks like an AVI file (RIFF AVI)"),
    "ts": (lambda p: _video(p, "ts"), "looks like an MPEG transport stream"),
    "flv": (lambda p: _video(p, "flv", ()), "looks like an FLV file (FLV header)"),
    "ogg": (lambda p: _video(p, "ogv", ()), "looks like an Ogg file (OggS)"),
}
WHY = {"avis": "only still AVIF images are decoded", "heic": "HEIF/HEIC is not supported",
       "ico_too_many": "(over 256)",
       "pdf": "documents are not rasterised",
       "svg": "vector images are not rasterised", "xml_svg": "vector images are not rasterised",
       "html": "not an image"}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_names_the_format_and_the_reason(tmp_path, name):
    make, looks = REFUSALS[name]
    data = make(tmp_path)
    path = tmp_path / f"in.{name}"
    path.write_bytes(data)
    buf = spdl.io.load_image_batch([data, str(path)], width=None, height=None, strict=False)
    assert buf.indices == ()
    for i in (0, 1):
        e = buf.errors[i]
        assert isinstance(e, spdl.io.UnsupportedFormatError), repr(e)
        assert looks in str(e), str(e)
        assert WHY.get(name, "video containers are not read") in str(e), str(e)


@pytest.mark.parametrize("head", [b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"])
def test_jpeg_xl_refusal_names_it(head):
    """Damaged JPEG XL (either signature) is refused by name: on a build with libjxl its
    demuxer did not take it, on one without (the wheel) there is no JPEG XL support."""
    buf = spdl.io.load_image_batch([head + bytes(range(256)) * 4], width=None, height=None,
                                   strict=False)
    e = buf.errors[0]
    assert isinstance(e, spdl.io.SpdlIOError), repr(e)
    if isinstance(e, spdl.io.UnsupportedFormatError):
        assert "looks like JPEG XL" in str(e), str(e)
        assert ("its demuxer did not take it" in str(e)
                or "no JPEG XL support (libjxl)" in str(e)), str(e)


def test_jpeg_xl_loads_where_the_build_has_libjxl(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3)).save(src)
    dst = tmp_path / "in.jxl"
    try:
        _ffmpeg(src, dst, "-c:v", "libjxl", "-distance", "0")
    except subprocess.CalledProcessError:
        pytest.skip("the ffmpeg CLI cannot write JPEG XL")
    if not dst.exists() or dst.stat().st_size == 0:
        pytest.skip("the ffmpeg CLI cannot write JPEG XL")
    buf = spdl.io.load_image_batch([str(dst)], width=None, height=None, strict=False)
    if "jpegxl_pipe" in spdl.io.IMAGE_DEMUXERS:
        np.testing.assert_array_equal(np_batch(buf)[0], np.asarray(Image.open(src)))
    else:
        assert "no JPEG XL support (libjxl)" in str(buf.errors[0])


def test_unknown_data_keeps_the_plain_refusal():
    buf = spdl.io.load_image_batch([b"\x00\x01 nothing known here" * 8], width=None,
                                   height=None, strict=False)
    assert "not an image format this build accepts" in str(buf.errors[0])


# ---------------------------------------------------------------------------
# ICO and CUR: the largest image
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", [False, True])
@pytest.mark.parametrize("bitmap_format", ["png", "bmp"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_icon_loads_its_largest_image(tmp_path, cursor, bitmap_format, mode):
    """An icon (or a cursor: type 2, which FFmpeg's probe does not take) loads its largest
    image, whatever the directory order, equal to Pillow's, from the bytes and the path."""
    a = np.random.default_rng(2).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    im = Image.fromarray(a if mode == "RGBA" else a[..., :3], mode)
    bio = io.BytesIO()
    im.save(bio, "ICO", sizes=[(16, 16), (64, 64), (32, 32)], bitmap_format=bitmap_format)
    data = bio.getvalue()
    if cursor:
        data = data[:2] + b"\x02" + data[3:]
    with Image.open(io.BytesIO(b"\x00\x00\x01\x00" + data[4:])) as ref:
        ref.load()
        want = {"rgb24": np.asarray(ref.convert("RGB")), "rgba": np.asarray(ref.convert("RGBA"))}
    path = tmp_path / ("c.cur" if cursor else "i.ico")
    path.write_bytes(data)
    for pix_fmt, w in want.items():
        assert w.shape[:2] == (64, 64)
        out = _load([data, str(path)], pix_fmt=pix_fmt)
        np.testing.assert_array_equal(out[0], w)
        np.testing.assert_array_equal(out[1], w)
