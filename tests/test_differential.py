"""Differential check across formats (issue 12): no silent wrong pixels.

A matrix of small images (37x23: odd sizes; smooth ramps, noise and a hard-edged
block) in every format Pillow, the ffmpeg CLI or tests/_formats.py writes, each loaded
at its own size in rgb24 (and gray for grey sources) from its bytes and its path. The
contract, per input: either the loader refuses it with an error, or its pixels agree
with at least one independent decoder: Pillow's convert("RGB"), PyAV (FFmpeg 7/8,
when installed) or, for lossless formats, the very pixels written (alpha is dropped,
never composited: the stored colour; n-bit samples are round(v * 255 / (2**n - 1))).
Formats everybody reads (PNG, JPEG, GIF, WebP, PNM/PAM, ...) must decode.

Agreement: lossless exact; lossy within the case's stated maximum difference.
A case marked xfail is a class another engineer is fixing now (its reason names it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _formats import (
    H, W, adam7_png, bmp4, content, ffmpeg, grey, pam, pil_bytes, plain_pnm, png, psd,
    sun_pixels, xpm,
)
from _util import np_batch

try:
    import av
except ImportError:  # PyAV is optional: Pillow and the written pixels remain
    av = None


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], tuple[bytes, np.ndarray | None]]  # (file, stored RGB or None)
    tol: int = 0          # largest difference to a reference that still agrees
    must: bool = True     # a format we claim: refusing it fails
    grey: bool = False    # a grey source: gray output checked too
    xfail: str = ""       # the class another engineer is fixing now


def _scale(v, bits):
    m = (1 << bits) - 1
    return ((v.astype(np.int64) * 510 + m) // (2 * m)).astype(np.uint8)


def _rgb(g):
    return np.repeat(g[..., None], 3, -1)


# ----- makers: return (bytes, stored RGB or None) -----------------------------------

C3 = content(3)
C4 = content(4, seed=2)
G = grey()
PAL16 = content(3, seed=7)[0, :16]  # 16 palette colours
IDX16 = (content(1, seed=3)[..., 0].astype(int) * 16 // 256).astype(np.uint8)


def _pil(mode_src, fmt, truth, **kw):
    def make(tmp):
        try:
            return pil_bytes(mode_src(), fmt, **kw), truth
        except (KeyError, OSError, ValueError) as e:  # a Pillow built without this writer
            pytest.skip(f"Pillow cannot write {fmt} {kw}: {e}")
    return make


def _im(a, mode=None):
    return lambda: Image.fromarray(a, mode) if mode else Image.fromarray(a)


def _pal_image():
    im = Image.fromarray(IDX16, "L").convert("P")
    im.putpalette(PAL16.reshape(-1).tolist())
    return im


def _pal_trns_image():
    im = _pal_image()
    im.info["transparency"] = 5
    return im


def _bilevel():
    return G > 128


def _ffmpeg_case(ext, args, src=C3, src_fmt="rgb24", truth=True):
    def make(tmp):
        return ffmpeg(tmp, src, ext, *args, src_fmt=src_fmt), (
            (src[..., :3] if src.ndim == 3 and src.shape[2] >= 3 else _rgb(src))
            if truth else None)
    return make


def _png_grey_bits(bits):
    v = (G.astype(int) * ((1 << bits) - 1) // 255).astype(np.uint8)
    return lambda tmp: (png(v[..., None], 0, bits), _rgb(_scale(v, bits)))


def _png_pal_bits(bits):
    n = 1 << bits
    idx = (IDX16 % n).astype(np.uint8)
    pal = PAL16[:n]
    return lambda tmp: (png(idx[..., None], 3, bits, plte=pal.tobytes()), pal[idx])


def _png16(ch, ct):
    a = (content(ch, seed=9).astype(np.uint16) * 257 + np.arange(W, dtype=np.uint16)[:, None]
         ).astype(np.uint16)
    truth = _scale(a[..., :3] if ch >= 3 else np.repeat(a[..., :1], 3, -1), 16)
    return lambda tmp: (png(a, ct, 16), truth)


def _png_trns(ct):
    """A colour key (tRNS of a grey or RGB PNG): the keyed pixels keep their colour."""
    if ct == 2:
        key = b"".join(bytes([0, int(v)]) for v in C3[4, 4])
        return lambda tmp: (png(C3, 2, 8, trns=key), C3)
    return lambda tmp: (png(G[..., None], 0, 8, trns=bytes([0, int(G[2, 2])])), _rgb(G))


def _pal_trns_png(tmp):
    alpha = bytes([255] * 5 + [0] + [128] * 10)
    return png(IDX16[..., None], 3, 4, plte=PAL16.tobytes(), trns=alpha), PAL16[IDX16]


def _apng(tmp):
    frames = [Image.fromarray(C3), Image.fromarray(255 - C3)]
    return pil_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:]), C3


def _gif_anim(tmp):
    frames = [_pal_image(), Image.fromarray((15 - IDX16).astype(np.uint8), "L").convert("P")]
    frames[1].putpalette(PAL16.reshape(-1).tolist())
    return pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]), PAL16[IDX16]


def _webp_anim(tmp, src=C3):
    frames = [Image.fromarray(src), Image.fromarray(255 - src)]
    return pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                     lossless=True, exact=True), src[..., :3]


def _apng_alpha(tmp):
    frames = [Image.fromarray(C4), Image.fromarray(255 - C4)]
    return pil_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:]), C4[..., :3]


def _gif_anim_transparent(tmp):
    frames = [_pal_trns_image(), _pal_image()]
    return pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:],
                     transparency=5, disposal=2), PAL16[IDX16]


def _pnm16(magic, ch):
    a = (content(ch, seed=5).astype(np.uint16) * 257 + 3).astype(">u2")
    head = b"%s\n%d %d\n65535\n" % (magic, W, H)
    truth = _scale(a, 16) if ch == 3 else _rgb(_scale(a[..., 0], 16))
    return lambda tmp: (head + a.tobytes(), truth)


def _pnm_maxval(magic, ch, mx):
    a = (content(ch, seed=6).astype(int) * mx // 255)
    head = b"%s\n%d %d\n%d\n" % (magic, W, H, mx)
    body = a.astype(">u2" if mx > 255 else np.uint8).tobytes()
    truth = ((a * 510 + mx) // (2 * mx)).astype(np.uint8)
    return lambda tmp: (head + body, truth if ch == 3 else _rgb(truth[..., 0]))


def _plain(magic):
    if magic == "P1":
        b = _bilevel()
        return lambda tmp: (plain_pnm(np.where(b, 0, 1), "P1", None),
                            _rgb(np.where(b, 255, 0).astype(np.uint8)))
    if magic == "P2":
        return lambda tmp: (plain_pnm(G, "P2", 255), _rgb(G))
    return lambda tmp: (plain_pnm(C3, "P3", 255), C3)


def _pam(tupl, ch, mx=255):
    def make(tmp):
        if tupl == "BLACKANDWHITE":
            b = _bilevel().astype(np.uint8)[..., None]
            return pam(b, 1, tupl), _rgb(b[..., 0] * 255)
        a = content(ch, seed=8).astype(int) * mx // 255
        t = ((a * 510 + mx) // (2 * mx)).astype(np.uint8)
        return pam(a, mx, tupl), (t[..., :3] if ch >= 3 else _rgb(t[..., 0]))
    return make


def _sgi48(tmp):
    """16-bit SGI of v * 257 (rgb48le in, rgb48be out: swscale only swaps bytes)."""
    return ffmpeg(tmp, C3.astype("<u2") * 257, "sgi", "-pix_fmt", "rgb48be",
                  src_fmt="rgb48le"), C3


def _planar10(ext, *args):
    """A 10-bit planar RGB file (gbrp10le in, as the encoder takes it) of ramps and noise."""
    a = content(3, seed=12).astype(np.uint16) * 4 + (np.arange(W, dtype=np.uint16) % 4)[:, None]
    planes = np.stack([a[..., 1], a[..., 2], a[..., 0]]).astype("<u2")  # G, B, R

    def make(tmp):
        return ffmpeg(tmp, planes.reshape(3 * H, W), ext, *args, "-pix_fmt", "gbrp10le",
                      src_fmt="gbrp10le", size=(W, H)), _scale(a, 10)
    return make


def _rgb48(ext, out_fmt):
    a = C3.astype(np.uint16) * 257 + 5

    def make(tmp):
        return (ffmpeg(tmp, a.astype("<u2"), ext, "-pix_fmt", out_fmt, src_fmt="rgb48le"),
                _scale(a, 16))
    return make


def _grey16(ext, out_fmt):
    a = G.astype(np.uint16) * 257 + 7

    def make(tmp):
        return (ffmpeg(tmp, a.astype("<u2"), ext, "-pix_fmt", out_fmt, src_fmt="gray16le"),
                _rgb(_scale(a, 16)))
    return make


def _sun_pal(tmp):
    data = ffmpeg(tmp, C3, "ras", "-pix_fmt", "pal8")
    return data, sun_pixels(data)


def _bmp4(tmp):
    return bmp4(IDX16, PAL16), PAL16[IDX16]


def _psd(ch, mode):
    planes = content(ch, seed=4).transpose(2, 0, 1).copy()
    truth = planes[:3].transpose(1, 2, 0) if mode == 3 else _rgb(planes[0])
    return lambda tmp: (psd(planes, mode), truth)


def _xpm(transparent=None):
    return lambda tmp: (xpm(IDX16, PAL16, transparent), None if transparent is not None
                        else PAL16[IDX16])


def _ico(bitmap_format):
    src = content(3, seed=11)[:, :23]  # 23x23
    src = np.pad(src, ((0, 9), (0, 9), (0, 0)), mode="edge")

    def make(tmp):
        data = pil_bytes(Image.fromarray(src), "ICO", sizes=[(16, 16), (32, 32)],
                         bitmap_format=bitmap_format)
        return data, src
    return make


# JPEG: equal to Pillow (both libjpeg-turbo; 1 allowed between builds' IDCTs), CMYK
# equal to PyAV and within 2 of Pillow's own CMYK inversion
JPEG_TOL = 2
# WebP lossy (libwebp, as Pillow; FFmpeg's VP8 upsamples chroma without libwebp's filter:
# PyAV up to 40 levels off at the noisy content's edges) and AVIF (libavif and dav1d, as
# Pillow): 1 and 2 allowed between library versions
WEBP_TOL = 1
AVIF_TOL = 2


CASES = [
    # PNG
    Case("png-rgb", _pil(_im(C3), "PNG", C3)),
    Case("png-rgba", _pil(_im(C4), "PNG", C4[..., :3])),
    Case("png-grey8", _pil(_im(G), "PNG", _rgb(G)), grey=True),
    Case("png-grey-alpha", _pil(lambda: Image.fromarray(np.stack([G, G[::-1]], -1), "LA"),
                                "PNG", _rgb(G)), grey=True),
    Case("png-grey16", _png16(1, 0), grey=True),
    Case("png-grey1", _png_grey_bits(1), grey=True),
    Case("png-grey2", _png_grey_bits(2), grey=True),
    Case("png-grey4", _png_grey_bits(4), grey=True),
    Case("png-pal1", _png_pal_bits(1)),
    Case("png-pal2", _png_pal_bits(2)),
    Case("png-pal4", _png_pal_bits(4)),
    Case("png-pal8", _pil(_pal_image, "PNG", PAL16[IDX16])),
    Case("png-pal-trns", _pal_trns_png),
    Case("png-rgb-trns", _png_trns(2)),
    Case("png-grey-trns", _png_trns(0), grey=True),
    Case("png-rgb16", _png16(3, 2)),
    Case("png-rgba16", _png16(4, 6)),
    Case("png-grey-alpha16", _png16(2, 4), grey=True),
    Case("apng", _apng),
    Case("apng-alpha", _apng_alpha),
    Case("png-interlaced-rgb", lambda tmp: (adam7_png(C3, 2), C3)),
    Case("png-interlaced-rgba", lambda tmp: (adam7_png(C4, 6), C4[..., :3])),
    Case("png-interlaced-grey", lambda tmp: (adam7_png(G[..., None], 0), _rgb(G)), grey=True),
    # JPEG (lossy)
    Case("jpeg-444", _pil(_im(C3), "JPEG", None, quality=90, subsampling=0), tol=JPEG_TOL),
    Case("jpeg-422", _pil(_im(C3), "JPEG", None, quality=90, subsampling=1), tol=JPEG_TOL),
    Case("jpeg-420", _pil(_im(C3), "JPEG", None, quality=90, subsampling=2), tol=JPEG_TOL),
    Case("jpeg-grey", _pil(_im(G), "JPEG", None, quality=90), tol=JPEG_TOL, grey=True),
    Case("jpeg-cmyk", _pil(lambda: Image.fromarray(C3).convert("CMYK"), "JPEG", None,
                           quality=90), tol=JPEG_TOL),
    Case("jpeg-progressive", _pil(_im(C3), "JPEG", None, quality=90, progressive=True),
         tol=JPEG_TOL),
    # GIF
    Case("gif", _pil(_pal_image, "GIF", PAL16[IDX16])),
    Case("gif-transparent", _pil(_pal_trns_image, "GIF", PAL16[IDX16])),
    Case("gif-grey", _pil(_im(G), "GIF", _rgb(G)), grey=True),
    Case("gif-animated", _gif_anim),
    Case("gif-animated-transparent", _gif_anim_transparent),
    Case("gif-interlaced", _pil(_pal_image, "GIF", PAL16[IDX16], interlace=True)),
    Case("gif-not-interlaced", _pil(_pal_image, "GIF", PAL16[IDX16], interlace=False)),
    # WebP
    Case("webp-lossless", _pil(_im(C3), "WEBP", C3, lossless=True)),
    Case("webp-lossless-alpha", _pil(_im(C4), "WEBP", C4[..., :3], lossless=True, exact=True)),
    Case("webp-lossy", _pil(_im(C3), "WEBP", None, quality=90), tol=WEBP_TOL),
    Case("webp-lossy-alpha", _pil(_im(C4), "WEBP", None, quality=90), tol=WEBP_TOL),
    Case("webp-animated", _webp_anim),
    Case("webp-animated-alpha", lambda tmp: _webp_anim(tmp, C4)),
    # PNM / PAM
    Case("ppm", _pil(_im(C3), "PPM", C3)),
    Case("pgm", _pil(_im(G), "PPM", _rgb(G)), grey=True),
    Case("pbm", _pil(lambda: Image.fromarray(_bilevel()), "PPM",
                     _rgb(np.where(_bilevel(), 255, 0).astype(np.uint8))), grey=True),
    Case("ppm16", _pnm16(b"P6", 3)),
    Case("pgm16", _pnm16(b"P5", 1), grey=True),
    # (FFmpeg 5.1 and 8 scale samples of maxval < 255 in 7-bit fixed point: within 1 of
    # round(v * 255 / m), 26% of them 1 off; Pillow is within 1 too)
    Case("ppm-maxval100", _pnm_maxval(b"P6", 3, 100), tol=1),
    Case("pgm-maxval1023", _pnm_maxval(b"P5", 1, 1023), grey=True),
    Case("pbm-plain", _plain("P1"), grey=True),
    Case("pgm-plain", _plain("P2"), grey=True),
    Case("ppm-plain", _plain("P3")),
    Case("pam-rgb", _pam("RGB", 3)),
    Case("pam-rgba", _pam("RGB_ALPHA", 4)),
    Case("pam-grey", _pam("GRAYSCALE", 1), grey=True),
    Case("pam-grey-alpha", _pam("GRAYSCALE_ALPHA", 2), grey=True),
    # (FFmpeg 5.1 and 8 refuse a BLACKANDWHITE PAM of one byte a sample; Pillow reads none)
    Case("pam-bw", _pam("BLACKANDWHITE", 1), grey=True, must=False),
    Case("pam-rgb16", _pam("RGB", 3, 65535)),
    Case("pam-rgb-maxval1000", _pam("RGB", 3, 1000)),
    # BMP
    Case("bmp-1bit", _pil(lambda: Image.fromarray(_bilevel()), "BMP",
                          _rgb(np.where(_bilevel(), 255, 0).astype(np.uint8))), grey=True),
    Case("bmp-4bit", _bmp4),
    Case("bmp-8bit", _pil(_pal_image, "BMP", PAL16[IDX16])),
    Case("bmp-grey", _pil(_im(G), "BMP", _rgb(G)), grey=True),
    Case("bmp-24", _pil(_im(C3), "BMP", C3)),
    Case("bmp-32", _pil(_im(C4), "BMP", C4[..., :3])),
    # 5/6-bit samples: FFmpeg replicates bits ((v << 3) | (v >> 2)), Pillow's TGA reader
    # shifts (v << 3), round(v * 255 / 31) is the third choice: all within 1 of each other
    Case("bmp-rgb555", _ffmpeg_case("bmp", ["-pix_fmt", "rgb555le"], truth=False), tol=1),
    Case("bmp-rgb565", _ffmpeg_case("bmp", ["-pix_fmt", "rgb565le"], truth=False), tol=1),
    # TGA
    Case("tga-rgb", _pil(_im(C3), "TGA", C3)),
    Case("tga-rgb-rle", _pil(_im(C3), "TGA", C3, compression="tga_rle")),
    Case("tga-rgba", _pil(_im(C4), "TGA", C4[..., :3])),
    Case("tga-grey", _pil(_im(G), "TGA", _rgb(G)), grey=True),
    Case("tga-pal", _pil(_pal_image, "TGA", PAL16[IDX16])),
    # TIFF
    *[Case(f"tiff-rgb-{c}", _pil(_im(C3), "TIFF", None if c == "jpeg" else C3, compression=c),
           tol=JPEG_TOL if c == "jpeg" else 0)
      for c in ("raw", "tiff_lzw", "tiff_deflate", "packbits", "jpeg")],
    Case("tiff-grey", _pil(_im(G), "TIFF", _rgb(G)), grey=True),
    Case("tiff-bilevel-g4", _pil(lambda: Image.fromarray(_bilevel()), "TIFF",
                                 _rgb(np.where(_bilevel(), 255, 0).astype(np.uint8)),
                                 compression="group4"), grey=True),
    Case("tiff-rgba", _pil(_im(C4), "TIFF", C4[..., :3], compression="tiff_lzw")),
    Case("tiff-pal", _pil(_pal_image, "TIFF", PAL16[IDX16])),
    Case("tiff-grey16", _pil(lambda: Image.fromarray(G.astype(np.uint16) * 257 + 3), "TIFF",
                             _rgb(_scale(G.astype(np.uint16) * 257 + 3, 16))), grey=True),
    Case("tiff-cmyk", _pil(lambda: Image.fromarray(C3).convert("CMYK"), "TIFF", None)),
    # JPEG 2000 (lossless)
    Case("j2k-rgb", _pil(_im(C3), "JPEG2000", C3, no_jp2=True)),
    Case("jp2-rgb", _pil(_im(C3), "JPEG2000", C3)),
    Case("j2k-grey", _pil(_im(G), "JPEG2000", _rgb(G), no_jp2=True), grey=True),
    Case("jp2-rgba", _pil(_im(C4), "JPEG2000", C4[..., :3])),
    # QOI, SGI, PCX, XBM, XPM, PSD, ICO, DDS, Sun raster, XWD, DPX, JPEG-LS
    Case("qoi-rgb", _pil(_im(C3), "QOI", C3)),
    Case("qoi-rgba", _pil(_im(C4), "QOI", C4[..., :3])),
    Case("sgi-rgb", _pil(_im(C3), "SGI", C3)),
    Case("sgi-rgba", _pil(_im(C4), "SGI", C4[..., :3])),
    Case("sgi-grey", _pil(_im(G), "SGI", _rgb(G)), grey=True),
    Case("sgi-rle", _ffmpeg_case("sgi", ["-rle", "1"])),
    Case("sgi-rgb48", _sgi48),
    Case("pcx-rgb", _pil(_im(C3), "PCX", C3)),
    Case("pcx-grey", _pil(_im(G), "PCX", _rgb(G)), grey=True),
    Case("pcx-pal", _pil(_pal_image, "PCX", PAL16[IDX16])),
    Case("pcx-1bit", _pil(lambda: Image.fromarray(_bilevel()), "PCX",
                          _rgb(np.where(_bilevel(), 255, 0).astype(np.uint8))), grey=True),
    Case("pcx-ffmpeg", _ffmpeg_case("pcx", [])),
    # XBM: a set bit is the foreground, black, as X11, GIMP and FFmpeg show it (Pillow
    # shows it white: Pillow wrote the True pixels as set bits)
    Case("xbm", _pil(lambda: Image.fromarray(_bilevel()), "XBM",
                     _rgb(np.where(_bilevel(), 0, 255).astype(np.uint8))), grey=True),
    Case("xpm", _xpm()),
    Case("xpm-transparent", _xpm(transparent=5)),
    Case("psd-rgb", _psd(3, 3)),
    Case("psd-rgba", _psd(4, 3)),
    Case("psd-grey", _psd(1, 1), grey=True),
    Case("ico-png", _ico("png")),
    Case("ico-bmp", _ico("bmp")),
    Case("dds-rgba", _pil(_im(C4), "DDS", C4[..., :3]), must=False),
    Case("dds-rgb", _pil(_im(C3), "DDS", C3), must=False),
    # BC1/BC3 decoders may differ by 2 (565 endpoint expansion, then 1/3 interpolation)
    Case("dds-dxt1", _pil(_im(C3), "DDS", None, pixel_format="DXT1"), tol=2, must=False),
    Case("dds-dxt5", _pil(_im(C4), "DDS", None, pixel_format="DXT5"), tol=2, must=False),
    Case("sun-raster", _ffmpeg_case("ras", []), must=False),
    # (Pillow reads this RLE palette raster wrong: 45 levels off on average)
    Case("sun-raster-pal", _sun_pal, must=False),
    Case("dpx-10bit", _planar10("dpx"), must=False),
    Case("dpx-rgb48", _rgb48("dpx", "rgb48le"), must=False),
    Case("sgi-grey16", _grey16("sgi", "gray16be"), grey=True),
    Case("png-grey16-ffmpeg", _grey16("png", "gray16be"), grey=True),
    Case("tiff-rgb48", _rgb48("tif", "rgb48le")),
    Case("tiff-grey16-ffmpeg", _grey16("tif", "gray16le"), grey=True),
    Case("qoi-ffmpeg", _ffmpeg_case("qoi", [])),
    Case("jpeg-ffmpeg-422", _ffmpeg_case("jpg", ["-pix_fmt", "yuvj422p", "-q:v", "2"],
                                         truth=False), tol=JPEG_TOL),
    Case("jpeg-ffmpeg-444", _ffmpeg_case("jpg", ["-pix_fmt", "yuvj444p", "-q:v", "2"],
                                         truth=False), tol=JPEG_TOL),
    Case("tga-rgb555", _ffmpeg_case("tga", ["-pix_fmt", "rgb555le"], truth=False), tol=1),
    Case("pcx-1bit-ffmpeg", _ffmpeg_case("pcx", ["-pix_fmt", "monob"], src=G, src_fmt="gray",
                                         truth=False), grey=True),
    Case("xwd", _ffmpeg_case("xwd", []), must=False),
    Case("dpx", _ffmpeg_case("dpx", []), must=False),
    Case("jpeg-ls", _ffmpeg_case("jls", ["-c:v", "jpegls"])),
    Case("jpeg-ls-grey", _ffmpeg_case("jls", ["-c:v", "jpegls"], src=G, src_fmt="gray"),
         grey=True),
    Case("avif", _pil(_im(C3), "AVIF", None, quality=90), tol=AVIF_TOL),
    Case("avif-alpha", _pil(_im(C4), "AVIF", None, quality=90), tol=AVIF_TOL),
    # formats we do not claim: refusing them is right, decoding them must be right
    Case("blp", _pil(_pal_image, "BLP", PAL16[IDX16]), must=False),
    Case("msp", _pil(lambda: Image.fromarray(_bilevel()), "MSP", None), must=False),
    Case("im", _pil(_im(C3), "IM", C3), must=False),
    Case("fits", _ffmpeg_case("fits", ["-pix_fmt", "gbrp"]), must=False),
]


# ----- the check ------------------------------------------------------------------


def _ours(data, path, pix_fmt):
    """Our pixels from the bytes and the path (identical), or the refusal."""
    try:
        out = np_batch(spdl.io.load_image_batch([data, str(path)], width=None, height=None,
                                                pix_fmt=pix_fmt))
    except spdl.io.BatchLoadError as e:
        return None, e
    np.testing.assert_array_equal(out[0], out[1])
    return out[0], None


def _references(data, truth):
    """{name: (H', W', 3) uint8} from every independent source that reads the file."""
    refs = {}
    if truth is not None:
        refs["written"] = truth
    try:
        with Image.open(io.BytesIO(data)) as im:
            refs["pillow"] = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 (Pillow may not read it: not a reference then)
        refs["pillow-error"] = str(e)[:80]
    if av is not None:
        try:
            with av.open(io.BytesIO(data)) as c:
                frame = next(c.decode(video=0))
                refs["pyav"] = frame.to_ndarray(format="rgb24")
        except Exception as e:  # noqa: BLE001
            refs["pyav-error"] = str(e)[:80]
    return refs


def _diff(ours, ref):
    if not isinstance(ref, np.ndarray):
        return ref
    if ours.shape != ref.shape:
        return f"shape {ours.shape} vs {ref.shape}"
    d = np.abs(ours.astype(int) - ref.astype(int))
    return int(d.max()), round(float(d.mean()), 3), int(np.count_nonzero(d))


def _agrees(d, case):
    return isinstance(d, tuple) and d[0] <= case.tol


def _params():
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_refused_or_agrees(tmp_path, case):
    """Refused with an error, or rgb24 (and gray for grey sources) equal to at least
    one independent decoder within the case's tolerance; formats we claim decode."""
    data, truth = case.make(tmp_path)
    path = tmp_path / "input"
    path.write_bytes(data)
    ours, refused = _ours(data, path, "rgb24")
    if refused is not None:
        assert not case.must, f"{case.id}: refused: {refused}"
        return
    refs = _references(data, truth)
    diffs = {name: _diff(ours, ref) for name, ref in refs.items()}
    assert any(_agrees(d, case) for d in diffs.values()), (
        f"{case.id}: rgb24 agrees with no decoder (max, mean, count): {diffs}")
    if case.grey:
        gray, refused = _ours(data, path, "gray")
        assert refused is None, f"{case.id}: gray refused: {refused}"
        # a grey source: every reference has R = G = B, and gray is that level
        gdiffs = {name: _diff(np.repeat(gray, 3, -1), ref) for name, ref in refs.items()}
        assert any(_agrees(d, case) for d in gdiffs.values()), (
            f"{case.id}: gray agrees with no decoder: {gdiffs}")


def test_jpeg_ls_cut_is_refused(tmp_path):
    """JPEG-LS (SOF55) goes to FFmpeg's jpegls decoder, which conceals a cut scan: data
    without its end-of-image marker is a DecodeError, never a concealed picture."""
    data, truth = _ffmpeg_case("jls", ["-c:v", "jpegls"])(tmp_path)
    path = tmp_path / "x.jls"
    path.write_bytes(data)
    np.testing.assert_array_equal(_ours(data, path, "rgb24")[0], truth)
    for cut in (3, len(data) // 2, len(data) - 2, len(data) - 1):
        with pytest.raises(spdl.io.BatchLoadError) as e:
            spdl.io.load_image_batch([data[:cut]], width=None, height=None)
        assert isinstance(e.value.errors[0], spdl.io.DecodeError), e.value


def _pnm_under_255(magic, mx, v, ch, head):
    body = np.repeat(v, ch).astype(np.uint8).tobytes()
    if magic == b"P7":
        tupl = b"RGB" if ch == 3 else b"GRAYSCALE"
        return (b"P7\nWIDTH %d\nHEIGHT 1\n# a comment\nDEPTH %d\nMAXVAL %s\nTUPLTYPE %s\n"
                b"ENDHDR\n" % (len(v), ch, head, tupl) + body)
    return b"%s\n# a comment\n%d 1\n%s\n" % (magic, len(v), head) + body


@pytest.mark.parametrize("magic", [b"P5", b"P6", b"P7"])
@pytest.mark.parametrize("digits", ["plain", "zero-padded"])
def test_pnm_maxval_under_255_is_exact(magic, digits):
    """Every sample v of a binary PNM of maxval m < 255 is round(v * 255 / m) (a sample
    over m counts as m): FFmpeg 5.1's decoder gave white (v = m) as 0 for m = 250 and 254,
    and was 1 off for 7-50% of samples; our copy is rescaled to maxval 255 first."""
    for mx in (1, 2, 3, 15, 100, 200, 250, 254):
        if magic == b"P7" and mx == 1:
            continue  # (maxval 1: BLACKANDWHITE's layout, left to FFmpeg)
        v = np.arange(mx + 1)
        ch = 1 if magic == b"P5" else 3
        head = b"%d" % mx if digits == "plain" else b"%04d" % mx
        data = _pnm_under_255(magic, mx, v, ch, head)
        out = np_batch(spdl.io.load_image_batch([data], width=None, height=None,
                                                pix_fmt="rgb24"))[0][0, :, 0].astype(int)
        np.testing.assert_array_equal(out, (v * 510 + mx) // (2 * mx), err_msg=f"maxval {mx}")
        over = _pnm_under_255(magic, mx, np.full(3, 255), ch, head)  # samples above maxval
        out = np_batch(spdl.io.load_image_batch([over], width=None, height=None,
                                                pix_fmt="rgb24"))[0][0, :, 0]
        assert (out == 255).all(), f"maxval {mx}: {out}"
        with pytest.raises(spdl.io.BatchLoadError):  # cut short stays an error
            spdl.io.load_image_batch([data[:-2]], width=None, height=None)
