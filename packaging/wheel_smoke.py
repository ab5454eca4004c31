"""A first batch from an installed spdl: JPEG, PNG and WebP made with Pillow, loaded as one batch.

Run by packaging/wheel_check.sh inside a clean root, from a directory outside any source tree.
Fails unless spdl comes from this interpreter's site-packages and its pixels are close to
Pillow's decode of the same files.
"""

import io
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import spdl
import spdl.io

site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
where = Path(spdl.__file__).resolve().parent
print(f"spdl {getattr(spdl, '__version__', '(no __version__)')} from {where}")
if not hasattr(spdl, "__version__"):
    sys.exit("spdl has no __version__")
if where.parent not in site:
    sys.exit(f"spdl was imported from {where}, not from site-packages {sorted(map(str, site))}")

# A smooth gradient with some texture: lossy codecs stay close on it.
h, w = 96, 128
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], axis=-1)
rgb = rgb.astype(np.uint8)

with tempfile.TemporaryDirectory() as d:
    paths = []
    for fmt, ext, kw in (("JPEG", "jpg", {"quality": 95}), ("PNG", "png", {}),
                         ("WEBP", "webp", {"quality": 95})):
        p = Path(d) / f"smoke.{ext}"
        Image.fromarray(rgb).save(p, fmt, **kw)
        paths.append(p)
    srcs = [str(paths[0]), paths[1].read_bytes(), str(paths[2])]   # paths and bytes both
    batch = np.asarray(spdl.io.load_image_batch(srcs, width=w, height=h))
    print(f"batch {batch.shape} {batch.dtype}")
    if batch.shape != (3, h, w, 3) or batch.dtype != np.uint8:
        sys.exit(f"expected (3, {h}, {w}, 3) uint8, got {batch.shape} {batch.dtype}")
    for i, p in enumerate(paths):
        ref = np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGB"), dtype=np.int16)
        diff = np.abs(batch[i].astype(np.int16) - ref)
        print(f"  {p.suffix[1:]:4s} max |diff| {diff.max():3d}  mean {diff.mean():.3f}")
        # Decoders may round chroma upsampling differently; a few levels, never a wrong image.
        if diff.max() > 16 or diff.mean() > 2:
            sys.exit(f"{p.name}: pixels differ from Pillow's decode (max {diff.max()}, "
                     f"mean {diff.mean():.3f})")
print("smoke OK")
