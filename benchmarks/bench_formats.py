#!/usr/bin/env python3
"""Speed of the formats issue 12 moved off FFmpeg's decoders: WebP (libwebp), TIFF
(libtiff) and AVIF (libavif), next to FFmpeg's decoder (forced with
``DecodeConfig(decoder=...)``, the path these formats took before) and Pillow.

    python benchmarks/bench_formats.py [--root DIR] [--reps 5] [--limit 64] [--out FILE]

The sets are derived from the ImageNet-sized photo PNGs of ``benchmarks/data.py``
(``ROOT/png``, built first if missing) into ``ROOT/formats/<set>/``: lossy WebP (q80),
lossless WebP, TIFF LZW, TIFF Deflate, TIFF JPEG (q90, YCbCr), AVIF (q70). Nothing is
written in the repository except the results file.

Two tasks, one thread, encoded bytes held in memory:
  decode   every image decoded at its own size (spdl's demux + decode stages; Pillow's
           ``Image.open(...).convert("RGB")``), images/s;
  224      ``load_image_batch(width=224, height=224)`` (fit and pad, bicubic) over the set
           in one batch; Pillow: decode, convert, bicubic resize to 224x224.
Reps are interleaved (method A, B, C, A, B, C, ...); the table gives medians and the
ratio to FFmpeg's decoder. The machine may be shared: the medians are what to compare.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

import spdl.io

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import data  # noqa: E402  (benchmarks/data.py: the photo sets)

SETS = {
    # name: (Pillow save arguments, FFmpeg decoder that read it before, extension)
    "webp-lossy": (dict(format="WEBP", quality=80), "webp", "webp"),
    "webp-lossless": (dict(format="WEBP", lossless=True), "webp", "webp"),
    "tiff-lzw": (dict(format="TIFF", compression="tiff_lzw"), "tiff", "tif"),
    "tiff-deflate": (dict(format="TIFF", compression="tiff_adobe_deflate"), "tiff", "tif"),
    "tiff-jpeg": (dict(format="TIFF", compression="jpeg", quality=90), "tiff", "tif"),
    "avif": (dict(format="AVIF", quality=70), None, "avif"),
}


def build_sets(root: Path, limit: int) -> dict[str, list[bytes]]:
    png = root / "png"
    if not png.is_dir() or not any(png.glob("*.png")):
        data.build(root, ["png"])
    sources = sorted(png.glob("*.png"))[:limit]
    out = {}
    for name, (kw, _, ext) in SETS.items():
        d = root / "formats" / name
        d.mkdir(parents=True, exist_ok=True)
        blobs = []
        for src in sources:
            dst = d / f"{src.stem}.{ext}"
            if not dst.exists():
                with Image.open(src) as im:
                    buf = io.BytesIO()
                    im.convert("RGB").save(buf, **kw)
                tmp = dst.with_suffix(".tmp")
                tmp.write_bytes(buf.getvalue())
                tmp.replace(dst)
            blobs.append(dst.read_bytes())
        out[name] = blobs
    return out


def spdl_decode(blobs, decoder=None):
    cfg = spdl.io.DecodeConfig(decoder=decoder) if decoder else None
    for b in blobs:
        spdl.io.decode_packets(spdl.io.demux_image(b), decode_config=cfg)


def spdl_224(blobs, decoder=None):
    cfg = spdl.io.DecodeConfig(decoder=decoder) if decoder else None
    spdl.io.load_image_batch(blobs, width=224, height=224, decode_config=cfg, num_threads=1)


def pil_decode(blobs):
    for b in blobs:
        Image.open(io.BytesIO(b)).convert("RGB")


def pil_224(blobs):
    for b in blobs:
        Image.open(io.BytesIO(b)).convert("RGB").resize((224, 224), Image.BICUBIC)


def methods(name: str):
    ffmpeg = SETS[name][1]
    m = {"spdl": (spdl_decode, spdl_224)}
    if ffmpeg:
        m["spdl, FFmpeg decoder"] = (lambda b: spdl_decode(b, ffmpeg),
                                     lambda b: spdl_224(b, ffmpeg))
    m["Pillow"] = (pil_decode, pil_224)
    return m


def mad(blobs, decoder) -> float:
    """Mean absolute difference (0..255) of spdl's native-size RGB from Pillow's, over a
    few images: shows where a decoder's speed comes with wrong pixels."""
    import numpy as np
    cfg = spdl.io.DecodeConfig(decoder=decoder) if decoder else None
    diffs = []
    for b in blobs[:4]:
        ours = spdl.io.to_numpy(spdl.io.load_image_batch(
            [b], width=None, height=None, decode_config=cfg, strict=False))
        ref = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.int16)
        if ours.shape[0] == 0 or ours.shape[1:] != ref.shape:
            return float("nan")
        diffs.append(np.abs(ours[0].astype(np.int16) - ref).mean())
    return float(np.mean(diffs))


def timed(fn, blobs) -> float:
    t = time.perf_counter()
    fn(blobs)
    return len(blobs) / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(
        os.environ.get("SPDL_BENCH_ROOT", Path.home() / ".cache" / "spdl-bench")))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS_FORMATS.md")
    args = ap.parse_args(argv)
    sets = build_sets(args.root, args.limit)
    started = time.time()
    lines = []
    for name, blobs in sets.items():
        ms = methods(name)
        for task, idx in (("decode", 0), ("224", 1)):
            for fn in ms.values():  # warm-up (and a check that each method runs)
                fn[idx](blobs[:4])
            runs = {k: [] for k in ms}
            for _ in range(args.reps):
                for k, fn in ms.items():
                    runs[k].append(timed(fn[idx], blobs))
            med = {k: statistics.median(v) for k, v in runs.items()}
            base = med.get("spdl, FFmpeg decoder")
            errs = {"spdl": mad(blobs, None), "Pillow": 0.0}
            if "spdl, FFmpeg decoder" in med:
                errs["spdl, FFmpeg decoder"] = mad(blobs, SETS[name][1])
            for k, v in med.items():
                ratio = f"{v / base:.2f}" if base else "-"
                lines.append(f"| {name} | {task} | {k} | {v:,.0f} | {ratio} | {errs[k]:.2f} |")
            print(lines[-len(med):], flush=True)
    kb = {n: sum(map(len, b)) / len(b) / 1024 for n, b in sets.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    text = [
        "# Formats decoded outside FFmpeg (issue 12): speed",
        "",
        f"- Command: `python benchmarks/bench_formats.py --reps {args.reps} --limit {args.limit}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}"
        f" (took {(time.time() - started) / 60:.1f} min)",
        f"- Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()};"
        f" spdl {spdl.__version__ if hasattr(spdl, '__version__') else '?'},"
        f" Pillow {Image.__version__}",
        f"- Sets: {args.limit} ImageNet-sized photos (benchmarks/data.py `png`), re-encoded by"
        " Pillow; mean KB: " + ", ".join(f"{n} {v:.0f}" for n, v in kb.items()),
        "- One thread; images/s is the median of interleaved reps; x FFmpeg is the ratio to"
        " spdl forced onto FFmpeg's decoder (the path before issue 12; FFmpeg 5.1 has no"
        " AVIF demuxer). Shared machine: compare within a row group.",
        "- decode stops at the decoder's own frame: FFmpeg's lossy WebP frame is YUV (no"
        " RGB conversion yet), libwebp's is RGB; the 224 task is the like-for-like one.",
        "- MAD: mean absolute difference (0..255) of the method's native-size RGB from"
        " Pillow's, over the first 4 images (JPEG-in-TIFF and lossy WebP/AVIF may differ a"
        " little by decoder; tens of levels are wrong pixels).",
        "",
        "| set | task | method | images/s | x FFmpeg | MAD vs Pillow |",
        "|---|---|---|---:|---:|---:|",
        *lines,
        "",
    ]
    args.out.write_text("\n".join(text))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
