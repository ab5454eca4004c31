"""Load a batch of images with spdl.io and show the result.

Makes its own images (JPEG, PNG, WebP of several sizes and aspect ratios) in
demo_out/images, loads them into one (N, 224, 224, 3) batch with
async_load_image_batch, prints shape, dtype and images/s, and writes
demo_out/contact_sheet.png so you can see the pixels are right.

    ./run demo [--count N] [--size S] [--out DIR]
"""

import argparse
import asyncio
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import spdl.io


def make_image(i: int, rng: np.random.Generator) -> Image.Image:
    """A test card: a colour gradient, a grid, a circle and the image's number."""
    w, h = int(rng.integers(160, 900)), int(rng.integers(160, 900))
    y, x = np.mgrid[0:h, 0:w]
    hue = (i * 0.137) % 1.0
    rgb = np.stack([
        255 * (0.5 + 0.5 * np.sin(2 * np.pi * (x / w + hue))),
        255 * (y / max(h - 1, 1)),
        255 * (0.5 + 0.5 * np.cos(2 * np.pi * (x + y) / (w + h) * 2)),
    ], axis=-1).astype(np.uint8)
    img = Image.fromarray(rgb)
    d = ImageDraw.Draw(img)
    step = max(w, h) // 8
    for gx in range(0, w, step):
        d.line([(gx, 0), (gx, h)], fill=(255, 255, 255), width=2)
    for gy in range(0, h, step):
        d.line([(0, gy), (w, gy)], fill=(255, 255, 255), width=2)
    r = min(w, h) // 4
    d.ellipse([w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r], outline=(0, 0, 0), width=6)
    d.text((10, 10), f"#{i} {w}x{h}", fill=(0, 0, 0))
    d.rectangle([0, 0, w - 1, h - 1], outline=(255, 0, 0), width=3)
    return img


def make_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        ext = ("jpg", "jpg", "png", "webp")[i % 4]
        path = folder / f"img{i:03d}.{ext}"
        img = make_image(i, rng)  # drawn even when cached, so the sizes stay the same
        if not path.exists():
            img.save(path, quality=90) if ext != "png" else img.save(path)
        paths.append(str(path))
    return paths


def contact_sheet(batch: np.ndarray, path: Path) -> None:
    n, h, w, c = batch.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = np.full((rows * (h + 4) + 4, cols * (w + 4) + 4, 3), 64, np.uint8)
    for k in range(n):
        r, q = divmod(k, cols)
        sheet[4 + r * (h + 4):4 + r * (h + 4) + h, 4 + q * (w + 4):4 + q * (w + 4) + w] = batch[k]
    Image.fromarray(sheet).save(path)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path("demo_out"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    paths = make_images(args.out / "images", args.count)
    mb = sum(os.path.getsize(p) for p in paths) / 1e6
    print(f"{len(paths)} images ({mb:.1f} MB of JPEG, PNG and WebP) in {args.out / 'images'}")

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        buf = await spdl.io.async_load_image_batch(paths, width=args.size, height=args.size)
        times.append(time.perf_counter() - t0)
    arr = spdl.io.to_numpy(buf)
    best = min(times)
    print(f"batch: {buf}")
    print(f"numpy: shape={arr.shape} dtype={arr.dtype} (a view: {not arr.flags.owndata})")
    print(f"speed: {len(paths) / np.median(times):.0f} images/s median, {len(paths) / best:.0f} best "
          f"of {args.repeat} runs on {len(os.sched_getaffinity(0))} cores")
    sheet = args.out / "contact_sheet.png"
    contact_sheet(arr, sheet)
    print(f"contact sheet: {sheet}")


if __name__ == "__main__":
    asyncio.run(main())
