"""Compare two builds of spdl.io (the system build and the wheel): same pixels, and speed.

    python packaging/compare_builds.py compare --python A --python B [--imagenet DIR]

`compare` writes a fixed set of inputs once (with the Pillow of the interpreter running it),
then runs `hashes` under each interpreter (each from outside the checkout, so each imports
its own spdl.io) and reports every output whose bytes differ; then it times the ImageNet-sized
set (benchmarks/data.py's imagenet) under each, interleaved, and prints the medians.

    python packaging/compare_builds.py inputs DIR      write the inputs into DIR
    python packaging/compare_builds.py hashes DIR      one line per output: name, shape, sha256
    python packaging/compare_builds.py bench DIR       images/s of one rep over DIR/*.jpg

The inputs: JPEG (baseline 4:2:0/4:2:2/4:4:4, progressive, gray, CMYK), PNG (RGB, RGBA,
gray, 16-bit gray, palette), WebP (lossy, lossless, lossy with alpha), BMP, TIFF (raw,
deflate), GIF, at 37x23, 301x199 and 800x600. The outputs: each input at its own size, and
fitted (pad), filled (crop) and stretched into 224x224, in rgb24, bgr24 and gray (gray16
for 16-bit), by spdl.io's own path and (",null" before the format) by a libavfilter graph.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

SIZES = [(37, 23), (301, 199), (800, 600)]
HERE = pathlib.Path(__file__).resolve()


# ---- inputs -------------------------------------------------------------------------------
def picture(w: int, h: int):
    """A deterministic picture with smooth gradients, hard edges, fine texture and colour."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.3) * np.cos(y / max(h, 1) * 3.1)
    g = 255 * (x + y) / (w + h)
    b = np.where(((x // 7) + (y // 5)) % 2 == 0, 230.0, 20.0)
    noise = np.random.RandomState(w * 1000 + h).randint(-12, 13, size=(h, w, 3))
    rgb = np.clip(np.stack([r, g, b], -1) + noise, 0, 255).astype(np.uint8)
    rgb[h // 3: h // 3 + max(h // 6, 1), :, :] = (255, 0, 0)  # a saturated band
    return Image.fromarray(rgb, "RGB")


def write_inputs(out: pathlib.Path) -> None:
    import numpy as np
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for w, h in SIZES:
        im = picture(w, h)
        rgba = im.copy()
        rgba.putalpha(Image.fromarray((np.arange(w * h).reshape(h, w) % 256).astype(np.uint8)))
        g16 = Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257 + 3).astype(np.uint16))
        s = f"{w}x{h}"
        im.save(out / f"jpeg420_{s}.jpg", quality=90, subsampling=2)
        im.save(out / f"jpeg422_{s}.jpg", quality=90, subsampling=1)
        im.save(out / f"jpeg444_{s}.jpg", quality=90, subsampling=0)
        im.save(out / f"jpegprog_{s}.jpg", quality=85, progressive=True)
        im.convert("L").save(out / f"jpeggray_{s}.jpg", quality=90)
        im.convert("CMYK").save(out / f"jpegcmyk_{s}.jpg", quality=90)
        im.save(out / f"png_{s}.png")
        rgba.save(out / f"pngrgba_{s}.png")
        im.convert("L").save(out / f"pnggray_{s}.png")
        g16.save(out / f"png16_{s}.png")
        im.convert("P").save(out / f"pngpal_{s}.png")
        im.save(out / f"webplossy_{s}.webp", quality=80)
        im.save(out / f"webplossless_{s}.webp", lossless=True)
        rgba.save(out / f"webpalpha_{s}.webp", quality=80)
        im.save(out / f"bmp_{s}.bmp")
        im.save(out / f"tiff_{s}.tiff")
        im.save(out / f"tiffdeflate_{s}.tiff", compression="tiff_adobe_deflate")
        im.convert("P").save(out / f"gif_{s}.gif")


# ---- hashes -------------------------------------------------------------------------------
def hashes(inputs: pathlib.Path) -> None:
    import numpy as np
    import spdl.io

    print(f"# spdl.io {getattr(spdl.io, '__version__', '(no __version__)')} from {pathlib.Path(spdl.io.__file__).parent}")
    # Builds with the typed load plan take keyword arguments and run every filter string
    # as written; older ones recognised get_video_filter_desc's strings. The same request
    # is asked of each in its own terms, so the outputs must be the same bytes.
    plan_api = "scale_mode" in inspect.signature(spdl.io.load_image_batch).parameters
    for path in sorted(inputs.iterdir()):
        fmts = ("gray16",) if path.name.startswith("png16") else ("rgb24", "bgr24", "gray")
        jobs = []
        for pix_fmt in fmts:
            native = (dict(width=None, height=None, pix_fmt=pix_fmt) if plan_api else dict(
                width=None, height=None, filter_desc=spdl.io.get_video_filter_desc(pix_fmt=pix_fmt)))
            jobs.append((f"native.{pix_fmt}", native))
            for mode in ("pad", "crop", None):
                desc = spdl.io.get_video_filter_desc(scale_width=224, scale_height=224,
                                                     scale_mode=mode, pix_fmt=pix_fmt)
                if plan_api:
                    own = dict(width=224, height=224, scale_mode=mode, pix_fmt=pix_fmt)
                else:
                    own = dict(width=224, height=224, filter_desc=desc)
                jobs.append((f"{mode}.{pix_fmt}", own))
                graph = desc.rsplit(",", 1)
                graph_kw = dict(width=None, height=None, pix_fmt=None) if plan_api else dict(
                    width=224, height=224)
                jobs.append((f"{mode}.{pix_fmt}.graph", dict(
                    graph_kw, filter_desc=f"{graph[0]},null,{graph[1]}")))
        for what, kw in jobs:
            try:
                a = np.ascontiguousarray(spdl.io.to_numpy(spdl.io.load_image_batch([str(path)], **kw)))
                line = f"{a.shape} {a.dtype} {hashlib.sha256(a.tobytes()).hexdigest()[:16]}"
            except Exception as e:  # noqa: BLE001
                line = f"error {type(e).__name__}"
            print(f"{path.name} {what}: {line}")


# ---- speed --------------------------------------------------------------------------------
def bench(imagenet: pathlib.Path, threads: int, batch_size: int, seconds: float) -> None:
    """images/s over the set, as benchmarks' ours_async does it (bytes in memory)."""
    import spdl.io

    datas = [p.read_bytes() for p in sorted(imagenet.glob("*.jpg"))]
    batches = [datas[i:i + batch_size] for i in range(0, len(datas), batch_size)]

    async def one(batch):
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=threads))
        return await spdl.io.async_load_image_batch(batch, width=224, height=224)

    for b in batches[:2]:
        asyncio.run(one(b))  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            asyncio.run(one(b))
            n += len(b)
        if time.perf_counter() - t0 >= seconds:
            break
    print(json.dumps({"images_per_s": n / (time.perf_counter() - t0), "images": n}))


# ---- compare ------------------------------------------------------------------------------
def run_under(python: str, *args: str) -> str:
    """Run this script under python ("VAR=value ... /path/python" sets variables for it)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    words = shlex.split(python)
    while "=" in words[0]:
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    return subprocess.run([*words, str(HERE), *args], check=True, capture_output=True,
                          text=True, cwd=tempfile.gettempdir(), env=env).stdout


def compare(pythons: list[str], imagenet: pathlib.Path | None, reps: int, threads: int,
            seconds: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        inputs = pathlib.Path(tmp) / "inputs"
        write_inputs(inputs)
        n_inputs = len(list(inputs.iterdir()))
        outs = [run_under(py, "hashes", str(inputs)).splitlines() for py in pythons]
    for py, out in zip(pythons, outs):
        print(f"{py}: {out[0]}")
    a, b = (dict(line.split(": ", 1) for line in out[1:]) for out in outs)
    diff = sorted(k for k in a if a[k] != b.get(k))
    errors = sorted(k for k in a if a[k].startswith("error"))
    print(f"pixels: {len(a)} outputs of {n_inputs} inputs; "
          f"{len(a) - len(diff)} identical, {len(diff)} differ; errors: {len(errors)}")
    for k in diff:
        print(f"  differs: {k}: {a[k]} | {b.get(k)}")
    for k in errors:
        print(f"  error: {k}: {a[k]} | {b.get(k)}")
    if imagenet is not None:
        # Interleaved, alternating which goes first; on a shared machine other work only
        # slows a rep, so the best rep is reported beside the median.
        speed = {py: [] for py in pythons}
        for rep in range(reps):
            for py in (pythons if rep % 2 == 0 else pythons[::-1]):
                r = json.loads(run_under(py, "bench", str(imagenet), "--threads", str(threads),
                                         "--seconds", str(seconds)))
                speed[py].append(r["images_per_s"])
        print(f"speed: {imagenet} ({len(list(imagenet.glob('*.jpg')))} JPEGs, 224x224 pad, "
              f"rgb24, batches of 256), {threads} threads, {reps} reps of {seconds:g} s "
              "interleaved, images/s:")
        for py, v in speed.items():
            print(f"  {py}: median {statistics.median(v):.0f}, best {max(v):.0f} "
                  f"(reps: {', '.join(f'{x:.0f}' for x in v)})")
    return 1 if diff or errors else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("dir", type=pathlib.Path)
    p = sub.add_parser("hashes")
    p.add_argument("dir", type=pathlib.Path)
    p = sub.add_parser("bench")
    p.add_argument("dir", type=pathlib.Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=5.0)
    p = sub.add_parser("compare")
    p.add_argument("--python", action="append", required=True)
    p.add_argument("--imagenet", type=pathlib.Path)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    if args.cmd == "inputs":
        write_inputs(args.dir)
    elif args.cmd == "hashes":
        hashes(args.dir)
    elif args.cmd == "bench":
        bench(args.dir, args.threads, args.batch_size, args.seconds)
    else:
        if len(args.python) != 2:
            ap.error("compare takes two --python")
        return compare(args.python, args.imagenet, args.reps, args.threads, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
