"""Check an installed wheel: self-contained, and every name spdl.io accepts is in its FFmpeg.

    python packaging/check_bundle.py [--repo DIR]

Run it with the wheel installed (and Pillow, for the sample images), from outside the
checkout, with no FFmpeg on the library path (`env -u LD_LIBRARY_PATH`). It checks:

1. every ELF file of the installed package resolves (ldd) only to the wheel's own
   libraries and the few system ones manylinux allows (glibc, libstdc++, libgcc_s);
   pixelbatch.libs holds each library of BUNDLED and none of NOT_BUNDLED (the codecs the
   bundle builds in statically, or leaves out); the format libraries answer their version
   calls, and libavif names dav1d as its only codec (libavif.so holds dav1d and libyuv);
2. `import spdl.io` works and names its version;
3. the demuxers: every name of the candidate list in spdl/io/_demux.pyx (read from the
   checkout given by --repo) is in spdl.io.IMAGE_DEMUXERS, except those the bundle leaves
   out on purpose (jpegxl_pipe: no libjxl);
4. the decoders and filters the bundle was built with (its BUILDINFO, in the wheel's
   .dist-info/licenses/bundled/): spdl.io accepts each decoder by name, and each filter
   runs on an image; get_video_filter_desc's pad, crop and stretch descriptions run;
5. a sample of every format Pillow can write decodes, each through sniffing and through
   its demuxer by name (TGA, AVIF and animated WebP have none: sniffed only).

Exits 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import re
import subprocess
import sys

# the libraries the wheel must and must not hold: one list, finish_wheel.py's
from finish_wheel import BUNDLED, NOT_BUNDLED

#: Candidates spdl.io accepts that the bundle leaves out on purpose, and why.
LEFT_OUT = {"jpegxl_pipe": "needs libjxl"}
#: System libraries a manylinux wheel may link (auditwheel's policy, the ones we meet).
SYSTEM_LIBS = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|"
                         r"ld-linux-x86-64|linux-vdso)\.so")
#: Arguments for the filters that need some to run.
FILTER_ARGS = {"format": "format=pix_fmts=rgb24", "colorspace": "colorspace=all=bt709:iall=bt601-6-625",
               "crop": "crop=w=8:h=8", "pad": "pad=w=40:h=40", "scale": "scale=w=12:h=10"}

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)
    print(f"  FAIL {msg}", flush=True)


def check_ldd(site: pathlib.Path) -> None:
    files = [p for p in (site / "spdl").rglob("*.so")]
    libs = site / "pixelbatch.libs"
    if not libs.is_dir():
        problem(f"no {libs}: not an installed wheel")
        return
    files += list(libs.iterdir())
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, env=env).stdout
        for line in out.splitlines():
            name, _, where = line.strip().partition(" => ")
            where = where.split(" (")[0]
            if "not found" in where:
                problem(f"{f.name}: {name} not found")
            elif where.startswith("/") and not where.startswith(str(site)):
                if not SYSTEM_LIBS.match(name):
                    problem(f"{f.name}: {name} resolves outside the wheel: {where}")
    print(f"ldd: {len(files)} ELF files, only the wheel's libraries and glibc/libstdc++")
    names = {re.sub(r"(-[0-9a-f]{8})?\.so.*$", "", p.name) for p in libs.iterdir()}
    for want in BUNDLED:
        if want not in names:
            problem(f"pixelbatch.libs has no {want}")
    for unwanted in NOT_BUNDLED:
        if unwanted in names:
            problem(f"pixelbatch.libs holds {unwanted}, which the bundle builds in or leaves out")
    print(f"pixelbatch.libs: {', '.join(sorted(names))}")


def check_format_libs(site: pathlib.Path) -> None:
    """libtiff, libwebp, libwebpdemux and libavif of the wheel load and name their versions."""
    import ctypes

    def lib(name: str) -> ctypes.CDLL | None:
        found = sorted((site / "pixelbatch.libs").glob(f"{name}-*.so*"))
        if not found:
            problem(f"no {name} in pixelbatch.libs")
            return None
        return ctypes.CDLL(str(found[0]))

    versions = []
    if tiff := lib("libtiff"):
        tiff.TIFFGetVersion.restype = ctypes.c_char_p
        versions.append(tiff.TIFFGetVersion().decode().splitlines()[0])
    for name, fn in (("libwebp", "WebPGetDecoderVersion"), ("libwebpdemux", "WebPGetDemuxVersion")):
        if webp := lib(name):
            v = getattr(webp, fn)()
            versions.append(f"{name} {v >> 16}.{(v >> 8) & 255}.{v & 255}")
    if avif := lib("libavif"):
        avif.avifVersion.restype = ctypes.c_char_p
        codecs = ctypes.create_string_buffer(256)
        avif.avifCodecVersions(codecs)
        versions.append(f"libavif {avif.avifVersion().decode()} ({codecs.value.decode()})")
        if not codecs.value.decode().startswith("dav1d [dec]:") or "," in codecs.value.decode():
            problem(f"libavif's codecs are {codecs.value.decode()!r}, not dav1d (decode) alone")
    print(f"format libraries: {'; '.join(versions)}")


def demuxer_candidates(repo: pathlib.Path) -> list[str]:
    src = (repo / "spdl" / "io" / "_demux.pyx").read_text()
    block = re.search(r"IMAGE_DEMUXERS = tuple\((.*?)\n\)", src, re.S).group(1)
    return re.findall(r'"([a-z0-9_]+)"', block)


def buildinfo(site: pathlib.Path) -> dict[str, list[str]]:
    found = list(site.glob("pixelbatch-*.dist-info/licenses/bundled/BUILDINFO"))
    if not found:
        problem("no BUILDINFO in the installed wheel's .dist-info/licenses/bundled/")
        return {}
    info = {}
    for line in found[0].read_text().splitlines():
        key, _, value = line.partition(": ")
        info[key] = value.split()
    return info


def samples():
    """(name, bytes, demuxer) of every format Pillow writes that the bundle should read."""
    from PIL import Image

    w, h = 37, 23
    rgb = Image.new("RGB", (w, h))
    rgb.putdata([(x * 7 % 256, y * 11 % 256, (x + y) * 5 % 256) for y in range(h) for x in range(w)])
    out = []

    def add(name, demuxer, image, fmt, **kw):
        buf = io.BytesIO()
        try:
            image.save(buf, fmt, **kw)
        except (OSError, KeyError, ValueError) as e:
            print(f"  (Pillow cannot write {name}: {e})")
            return
        out.append((name, buf.getvalue(), demuxer))

    add("jpeg", "jpeg_pipe", rgb, "JPEG", quality=90)
    add("jpeg-progressive", "jpeg_pipe", rgb, "JPEG", progressive=True)
    add("jpeg-gray", "jpeg_pipe", rgb.convert("L"), "JPEG")
    add("jpeg-cmyk", "jpeg_pipe", rgb.convert("CMYK"), "JPEG")
    add("png", "png_pipe", rgb, "PNG")
    add("png-16bit", "png_pipe", rgb.convert("I;16"), "PNG")
    add("webp-lossy", "webp_pipe", rgb, "WEBP", quality=80)
    add("webp-lossless", "webp_pipe", rgb, "WEBP", lossless=True)
    add("gif", "gif", rgb.convert("P"), "GIF")
    add("tiff", "tiff_pipe", rgb, "TIFF")
    add("tiff-deflate", "tiff_pipe", rgb, "TIFF", compression="tiff_adobe_deflate")
    add("tiff-jpeg", "tiff_pipe", rgb, "TIFF", compression="jpeg")
    add("bmp", "bmp_pipe", rgb, "BMP")
    add("ppm", "ppm_pipe", rgb, "PPM")
    add("pgm", "pgm_pipe", rgb.convert("L"), "PPM")
    add("pbm", "pbm_pipe", rgb.convert("1"), "PPM")
    add("pcx", "pcx_pipe", rgb, "PCX")
    add("sgi", "sgi_pipe", rgb, "SGI")
    add("xbm", "xbm_pipe", rgb.convert("1"), "XBM")
    add("j2k", "j2k_pipe", rgb, "JPEG2000", no_jp2=True)
    add("dds", "dds_pipe", rgb.convert("RGBA"), "DDS")
    add("qoi", "qoi_pipe", rgb, "QOI")
    # the formats of the bundle's libtiff, libwebp (animation), libavif (dav1d) and FFmpeg's
    # targa decoder; TGA, AVIF and an animation's first frame have no demuxer to name
    add("tiff-lzw", "tiff_pipe", rgb, "TIFF", compression="tiff_lzw")
    add("tiff-packbits", "tiff_pipe", rgb, "TIFF", compression="packbits")
    add("tiff-group4", "tiff_pipe", rgb.convert("1"), "TIFF", compression="group4")
    add("tiff-16bit", "tiff_pipe", rgb.convert("I;16"), "TIFF")
    add("webp-animated", None, rgb, "WEBP", save_all=True, lossless=True, duration=100,
        append_images=[rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    add("avif", None, rgb, "AVIF", quality=90)
    add("tga", None, rgb, "TGA")
    add("tga-rle", None, rgb, "TGA", compression="tga_rle")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    if os.environ.get("LD_LIBRARY_PATH"):
        problem(f"LD_LIBRARY_PATH is set ({os.environ['LD_LIBRARY_PATH']}): run with it unset")

    import spdl.io
    from spdl.io._errors import ConfigError

    pkg = pathlib.Path(spdl.io.__file__).parent
    site = pkg.parent.parent
    if str(args.repo.resolve()) in str(pkg.resolve()):
        problem(f"spdl.io was imported from the checkout ({pkg}), not from the installed wheel")
    print(f"spdl.io {spdl.io.__version__} from {pkg}")
    check_ldd(site)
    check_format_libs(site)

    accepted = set(spdl.io.IMAGE_DEMUXERS)
    candidates = demuxer_candidates(args.repo)
    for name in candidates:
        if name not in accepted and name not in LEFT_OUT:
            problem(f"demuxer {name} is accepted by spdl.io but not in the bundle")
    print(f"demuxers: {len(accepted)} of {len(candidates)} candidates "
          f"(left out on purpose: {', '.join(f'{k} ({v})' for k, v in LEFT_OUT.items())})")

    info = buildinfo(site)
    from PIL import Image

    one = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 90)).save(one, "PNG")
    one = one.getvalue()
    # DecodeConfig checks types only; spdl.io looks the name up when a decode runs.
    for name in info.get("ffmpeg decoders", []):
        try:
            spdl.io.decode_packets(spdl.io.demux_image(one),
                                   decode_config=spdl.io.DecodeConfig(decoder=name))
        except ConfigError as e:
            problem(f"decoder {name} is not accepted: {e}")
        except spdl.io.SpdlIOError:
            pass  # a PNG given to another decoder fails to decode: the name was accepted
    print(f"decoders: {len(info.get('ffmpeg decoders', []))} accepted by name")

    filters = info.get("ffmpeg filters", [])
    descs = [FILTER_ARGS.get(f, f) + ",format=pix_fmts=rgb24" for f in filters if f != "format"]
    descs += [spdl.io.get_video_filter_desc(scale_width=20, scale_height=20, scale_mode=m)
              for m in ("pad", "crop", None)]
    for desc in descs:
        try:
            spdl.io.load_image_batch([one], width=None, height=None, filter_desc=desc)
        except Exception as e:  # noqa: BLE001
            problem(f"filter {desc!r}: {type(e).__name__}: {e}")
    print(f"filters: {len(descs)} descriptions ran")

    n = 0
    for name, data, demuxer in samples():
        for cfg in (None, spdl.io.DemuxConfig(format=demuxer)) if demuxer else (None,):
            try:
                buf = spdl.io.load_image_batch([data], width=16, height=16, demux_config=cfg)
                assert spdl.io.to_numpy(buf).shape == (1, 16, 16, 3)
                n += 1
            except Exception as e:  # noqa: BLE001
                how = f"demuxer {demuxer}" if cfg else "sniffed/probed"
                problem(f"sample {name} ({how}): {type(e).__name__}: {e}")
    print(f"samples: {n} loads")

    if problems:
        print(f"check_bundle: {len(problems)} problem(s)")
        return 1
    print("check_bundle: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
