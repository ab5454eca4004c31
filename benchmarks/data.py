#!/usr/bin/env python3
"""Build the image sets used by the spdl benchmarks.

    python benchmarks/data.py [--root DIR] [--force]

Default root: ``~/.cache/spdl-bench`` (or ``$SPDL_BENCH_ROOT``).  Nothing is
written inside the repository.

Source material: real camera photos shipped in Debian wallpaper packages.
The ``.deb`` files are fetched with ``apt-get download`` (no root needed for
that, but apt's package lists must exist: run ``apt-get update`` once) and
unpacked with ``dpkg -x`` into ``ROOT/extract``.  Only a hand-picked list of
photographs is used (the packages also hold many renders and vector
artwork, which compress and decode very differently from photos).

Sets produced (each with a ``manifest.json``):

``imagenet/``
    512 JPEGs shaped like ImageNet validation images: random crops of the
    photos, resized (Lanczos) so the short side is in 333..500 px (long side
    mostly capped at 500 like ImageNet), quality 70..95 (skewed high), ~10% progressive,
    ~5% grayscale, chroma subsampling mostly 4:2:0 with some 4:4:4 / 4:2:2.
``fullsize/``
    64 full-size JPEG photos (1-24 MP): every original photo as shipped
    (byte-for-byte), topped up with large crops / rescales of the originals
    re-encoded at quality 90.
``png/``
    128 ImageNet-sized PNGs (RGB, 8 bit), other random crops of the photos.

Everything is deterministic (fixed seed, fixed processing order) and the
step is idempotent: a set whose manifest matches the current recipe and
whose files are all present is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

# Bump when the recipe changes, so cached sets are rebuilt.
RECIPE_VERSION = 4
SEED = 20240601

# Debian packages with wallpapers.  Only some of their images are photos.
DEB_PACKAGES = [
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
]

# Photographs (not renders / drawings), picked by eye from the packages
# above, as paths relative to the unpacked tree.
_LOMIRI = "usr/share/backgrounds/"
_MATE = "usr/share/backgrounds/mate/nature/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
PHOTOS = (
    [
        _LOMIRI + n
        for n in (
            "Bridge_by_Sander_Klootwijk.jpg",
            "Dragonfly_by_Bolly.jpg",
            "Kleiber_by_Lukas_Baubkus.jpg",
            "Picture_0B_by_freespace.jpg",
            "Picture_1A_by_freespace.jpg",
            "Wine_by_Jakkub_Mede.jpg",
            "aitzgorri_by_Aitzol_Berasategi.jpg",
            "analogpattern_by_Peter_Nerlich.jpg",
            "free_by_Peter_Nerlich.jpg",
            "friends_by_Aitzol_Berasategi.jpg",
            "greentock_by_Peter_Nerlich.jpg",
            "life_by_Aitzol_Berasategi.jpg",
            "picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "seeding_by_Clements_Engelhardt.jpg",
            "sunset_by_Aitzol_Berasategi.jpg",
        )
    ]
    + [
        _MATE + n
        for n in (
            "Aqua.jpg",
            "Blinds.jpg",
            "Dune.jpg",
            "FreshFlower.jpg",
            "Garden.jpg",
            "GreenMeadow.jpg",
            "LadyBird.jpg",
            "RainDrops.jpg",
            "Storm.jpg",
            "TwoWings.jpg",
            "Wood.jpg",
            "YellowFlower.jpg",
        )
    ]
    + [
        _PLASMA.format(n)
        for n in (
            "BytheWater",
            "ColdRipple",
            "ColorfulCups",
            "DarkestHour",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "OneStandsOut",
            "Path",
            "summer_1am",
        )
    ]
)

PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".webp")

N_IMAGENET = 512
N_FULLSIZE = 64
N_PNG = 128


# --------------------------------------------------------------------------
# Fetching the packages
# --------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def fetch_debs(root: Path) -> list[Path]:
    deb_dir = root / "debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    debs = []
    for pkg in DEB_PACKAGES:
        found = sorted(deb_dir.glob(f"{pkg}_*.deb"))
        if not found:
            print(f"[data] apt-get download {pkg}", flush=True)
            proc = _run(["apt-get", "download", pkg], cwd=deb_dir)
            if proc.returncode != 0 and os.geteuid() == 0:
                # Package lists may be missing on a fresh machine.
                print("[data] apt-get download failed; running apt-get update", flush=True)
                _run(["apt-get", "update"])
                proc = _run(["apt-get", "download", pkg], cwd=deb_dir)
            if proc.returncode != 0:
                raise SystemExit(
                    f"apt-get download {pkg} failed:\n{proc.stderr}\n"
                    "Run `apt-get update` (as root) and retry."
                )
            found = sorted(deb_dir.glob(f"{pkg}_*.deb"))
        debs.append(found[-1])
    return debs


def extract_debs(root: Path, debs: list[Path]) -> Path:
    ext = root / "extract"
    ext.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        marker = ext / f".done-{deb.name}"
        if marker.exists():
            continue
        print(f"[data] dpkg -x {deb.name}", flush=True)
        proc = _run(["dpkg", "-x", str(deb), str(ext)])
        if proc.returncode != 0:
            raise SystemExit(f"dpkg -x {deb} failed:\n{proc.stderr}")
        marker.touch()
    return ext


def collect_photos(ext: Path) -> list[Path]:
    photos = []
    for rel in PHOTOS:
        p = (ext / rel).resolve()
        if p.is_file() and p.suffix.lower() in PHOTO_EXTS:
            photos.append(p)
        else:
            print(f"[data] warning: photo not found in packages: {rel}", flush=True)
    # De-duplicate by content (packages ship symlinks and copies).
    seen, uniq = set(), []
    for p in photos:
        h = hashlib.sha1(p.read_bytes()).hexdigest()
        if h not in seen:
            seen.add(h)
            uniq.append(p)
    if len(uniq) < 10:
        raise SystemExit(f"only {len(uniq)} photos found under {ext}; cannot build sets")
    return uniq


# --------------------------------------------------------------------------
# Image derivation
# --------------------------------------------------------------------------
# Aspect ratios of crops (long/short) and their weights; ImageNet is
# dominated by 4:3 and 3:2 photos with a fair share of squares.
ASPECTS = np.array([1.0, 1.25, 4 / 3, 1.5, 16 / 9])
ASPECT_W = np.array([0.17, 0.13, 0.45, 0.2, 0.05])


def _target_size(rng: np.random.Generator) -> tuple[float, int, int, bool]:
    """Pick aspect ratio, output (short, long) size and orientation."""
    aspect = float(rng.choice(ASPECTS, p=ASPECT_W))
    portrait = bool(rng.random() < 0.25)
    if rng.random() < 0.85:
        # ImageNet style: long side at most 500.
        hi = max(333, min(500, int(500 / aspect)))
    else:
        hi = 500
    short = int(rng.integers(333, hi + 1))
    long = int(round(short * aspect))
    return aspect, short, long, portrait


def _random_crop(rng: np.random.Generator, size: tuple[int, int], aspect: float,
                 portrait: bool, min_frac: float) -> tuple[int, int, int, int]:
    """A random crop box with the given aspect covering >= min_frac of the side."""
    W, H = size
    cw_ratio = 1 / aspect if portrait else aspect  # crop width / crop height
    # Largest box of this aspect that fits.
    max_h = min(H, W / cw_ratio)
    frac = float(rng.uniform(min_frac, 1.0))
    ch = max(1, int(max_h * frac))
    cw = max(1, min(W, int(round(ch * cw_ratio))))
    x0 = int(rng.integers(0, W - cw + 1))
    y0 = int(rng.integers(0, H - ch + 1))
    return x0, y0, x0 + cw, y0 + ch


def _jpeg_params(rng: np.random.Generator) -> dict:
    r = rng.random()
    subsampling = "4:2:0" if r < 0.80 else ("4:4:4" if r < 0.95 else "4:2:2")
    return {
        # 70..95, skewed towards high quality like most web photos
        # (mean ~89, which gives ~40 KB per ImageNet-sized image).
        "quality": int(np.clip(95 - round(25 * rng.beta(1.0, 3.0)), 70, 95)),
        "progressive": bool(rng.random() < 0.10),
        "grayscale": bool(rng.random() < 0.05),
        "subsampling": subsampling,
    }


_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _encode_jpeg(img: Image.Image, params: dict) -> bytes:
    if params["grayscale"]:
        img = img.convert("L")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    kw = {"quality": params["quality"], "progressive": params["progressive"]}
    if img.mode != "L":
        kw["subsampling"] = _SUBSAMPLING[params["subsampling"]]
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()


def _plan_assignment(rng: np.random.Generator, n: int, n_src: int) -> np.ndarray:
    """Source index per output image: round robin over a shuffled order."""
    order = np.concatenate([rng.permutation(n_src) for _ in range(n // n_src + 1)])
    return order[:n]


def _derive_small(rng: np.random.Generator, photos: list[Path], n: int, kind: str):
    """Yield (index, source, PIL image, info) for ImageNet-sized derived images."""
    assign = _plan_assignment(rng, n, len(photos))
    # Draw all random parameters first (in index order) so the result does not
    # depend on the order images are processed in.
    plans = []
    for i in range(n):
        aspect, short, long, portrait = _target_size(rng)
        plans.append({"src": int(assign[i]), "aspect": aspect, "short": short,
                      "long": long, "portrait": portrait})
    jpeg = [_jpeg_params(rng) for _ in range(n)] if kind == "jpeg" else [None] * n
    by_src: dict[int, list[int]] = {}
    for i, p in enumerate(plans):
        by_src.setdefault(p["src"], []).append(i)
    for s in sorted(by_src):
        src_img = _load_rgb(photos[s])
        crop_rng = np.random.default_rng([SEED, s, 1 if kind == "jpeg" else 2])
        for i in by_src[s]:
            p = plans[i]
            box = _random_crop(crop_rng, src_img.size, p["aspect"], p["portrait"], 0.3)
            w, h = (p["short"], p["long"]) if p["portrait"] else (p["long"], p["short"])
            # Reduce in two steps for speed (box filter then Lanczos).
            img = src_img.resize((w, h), Image.LANCZOS, box=box, reducing_gap=3.0)
            yield i, photos[s], img, jpeg[i], box


def build_imagenet(out: Path, photos: list[Path], ext: Path) -> list[dict]:
    rng = np.random.default_rng([SEED, 1])
    entries = [None] * N_IMAGENET
    for i, src, img, params, box in _derive_small(rng, photos, N_IMAGENET, "jpeg"):
        data = _encode_jpeg(img, params)
        name = f"img_{i:04d}.jpg"
        (out / name).write_bytes(data)
        entries[i] = {"file": name, "width": img.size[0], "height": img.size[1],
                      "bytes": len(data), "source": str(src.relative_to(ext)),
                      "crop": list(box), **params,
                      "sha256": hashlib.sha256(data).hexdigest()}
    return entries


def build_png(out: Path, photos: list[Path], ext: Path) -> list[dict]:
    rng = np.random.default_rng([SEED, 3])
    entries = [None] * N_PNG
    for i, src, img, _, box in _derive_small(rng, photos, N_PNG, "png"):
        data = _encode_png(img)
        name = f"img_{i:04d}.png"
        (out / name).write_bytes(data)
        entries[i] = {"file": name, "width": img.size[0], "height": img.size[1],
                      "bytes": len(data), "source": str(src.relative_to(ext)),
                      "crop": list(box), "mode": "RGB",
                      "sha256": hashlib.sha256(data).hexdigest()}
    return entries


def build_fullsize(out: Path, photos: list[Path], ext: Path) -> list[dict]:
    rng = np.random.default_rng([SEED, 2])
    entries = []
    # 1. The originals, as shipped (JPEG) or re-encoded at q90.
    for src in photos:
        if len(entries) >= N_FULLSIZE:
            break
        with Image.open(src) as im:
            fmt, size = im.format, im.size
        i = len(entries)
        if fmt == "JPEG":
            data = src.read_bytes()
            how = "original"
        else:
            data = _encode_jpeg(_load_rgb(src), {"quality": 90, "progressive": False,
                                                "grayscale": False, "subsampling": "4:2:0"})
            how = f"re-encoded from {fmt} at q90"
        name = f"full_{i:03d}.jpg"
        (out / name).write_bytes(data)
        entries.append({"file": name, "width": size[0], "height": size[1],
                        "bytes": len(data), "source": str(src.relative_to(ext)),
                        "how": how, "sha256": hashlib.sha256(data).hexdigest()})
    # 2. Top up with large crops / rescales of the originals (>= 1 MP), q90.
    extra = N_FULLSIZE - len(entries)
    assign = _plan_assignment(rng, max(extra, 0), len(photos))
    for k in range(max(extra, 0)):
        src = photos[int(assign[k])]
        img = _load_rgb(src)
        W, H = img.size
        for _ in range(20):
            frac = rng.uniform(0.5, 1.0)
            cw, ch = int(W * rng.uniform(frac, 1.0)), int(H * rng.uniform(frac, 1.0))
            scale = rng.uniform(0.6, 1.0)
            w, h = int(cw * scale), int(ch * scale)
            if w * h >= 1_000_000:
                break
        else:
            cw, ch, w, h = W, H, W, H
        x0 = int(rng.integers(0, W - cw + 1))
        y0 = int(rng.integers(0, H - ch + 1))
        box = (x0, y0, x0 + cw, y0 + ch)
        img = img.resize((w, h), Image.LANCZOS, box=box, reducing_gap=3.0)
        params = {"quality": 90, "progressive": False, "grayscale": img.mode == "L",
                  "subsampling": "4:2:0"}
        data = _encode_jpeg(img, params)
        i = len(entries)
        name = f"full_{i:03d}.jpg"
        (out / name).write_bytes(data)
        entries.append({"file": name, "width": w, "height": h, "bytes": len(data),
                        "source": str(src.relative_to(ext)), "crop": list(box),
                        "how": "crop/rescale re-encoded at q90",
                        "sha256": hashlib.sha256(data).hexdigest()})
    return entries


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------
BUILDERS = {
    "imagenet": build_imagenet,
    "fullsize": build_fullsize,
    "png": build_png,
}


def _recipe_key(photos: list[Path], ext: Path) -> str:
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}:{SEED}:{N_IMAGENET}:{N_FULLSIZE}:{N_PNG}".encode())
    h.update(Image.__version__.encode())
    for p in photos:
        h.update(str(p.relative_to(ext)).encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _is_complete(out: Path, key: str) -> bool:
    man = out / "manifest.json"
    if not man.exists():
        return False
    try:
        m = json.loads(man.read_text())
    except ValueError:
        return False
    if m.get("recipe") != key:
        return False
    return all((out / e["file"]).is_file() and (out / e["file"]).stat().st_size == e["bytes"]
               for e in m["images"])


def summarize(name: str, entries: list[dict]) -> dict:
    w = np.array([e["width"] for e in entries], dtype=float)
    h = np.array([e["height"] for e in entries], dtype=float)
    b = np.array([e["bytes"] for e in entries], dtype=float)
    s = {
        "set": name,
        "count": len(entries),
        "mean_width": round(float(w.mean()), 1),
        "mean_height": round(float(h.mean()), 1),
        "mean_megapixels": round(float((w * h).mean() / 1e6), 3),
        "min_megapixels": round(float((w * h).min() / 1e6), 3),
        "max_megapixels": round(float((w * h).max() / 1e6), 3),
        "mean_bytes": int(b.mean()),
        "total_bytes": int(b.sum()),
    }
    if entries and "quality" in entries[0]:
        s["progressive"] = sum(bool(e.get("progressive")) for e in entries)
        s["grayscale"] = sum(bool(e.get("grayscale")) for e in entries)
        s["subsampling"] = {k: sum(e.get("subsampling") == k and not e.get("grayscale")
                                   for e in entries) for k in _SUBSAMPLING}
    return s


def build(root: Path, sets: list[str], force: bool = False) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    debs = fetch_debs(root)
    ext = extract_debs(root, debs)
    photos = collect_photos(ext)
    key = _recipe_key(photos, ext)
    print(f"[data] {len(photos)} source photos; recipe {key}", flush=True)
    summaries = {}
    for name in sets:
        out = root / name
        if not force and _is_complete(out, key):
            entries = json.loads((out / "manifest.json").read_text())["images"]
            print(f"[data] {name}: cached ({len(entries)} images)", flush=True)
        else:
            t0 = time.monotonic()
            tmp = root / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            entries = BUILDERS[name](tmp, photos, ext)
            summary = summarize(name, entries)
            manifest = {"set": name, "recipe": key, "seed": SEED,
                        "pillow": Image.__version__, "summary": summary,
                        "images": entries}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
            print(f"[data] {name}: built {len(entries)} images in "
                  f"{time.monotonic() - t0:.1f}s", flush=True)
        summaries[name] = summarize(name, entries)
    return summaries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path,
                    default=Path(os.environ.get("SPDL_BENCH_ROOT", "~/.cache/spdl-bench")),
                    help="cache directory (default: %(default)s)")
    ap.add_argument("--sets", default=",".join(BUILDERS),
                    help="comma separated subset of: " + ",".join(BUILDERS))
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = ap.parse_args(argv)
    root = args.root.expanduser().resolve()
    sets = [s for s in args.sets.split(",") if s]
    bad = [s for s in sets if s not in BUILDERS]
    if bad:
        ap.error(f"unknown set(s): {bad}")
    summaries = build(root, sets, args.force)
    print(f"\nImage sets under {root}")
    print(f"{'set':10s} {'count':>5s} {'mean WxH':>13s} {'mean MP':>8s} {'MP range':>15s} "
          f"{'mean KB':>8s} {'total MB':>9s}  extra")
    for s in summaries.values():
        extra = ""
        if "progressive" in s:
            extra = (f"progressive={s['progressive']} grayscale={s['grayscale']} "
                     + " ".join(f"{k}={v}" for k, v in s["subsampling"].items()))
        print(f"{s['set']:10s} {s['count']:5d} "
              f"{s['mean_width']:6.0f}x{s['mean_height']:<6.0f} {s['mean_megapixels']:8.3f} "
              f"{s['min_megapixels']:6.2f}-{s['max_megapixels']:<6.2f}   "
              f"{s['mean_bytes'] / 1024:8.1f} {s['total_bytes'] / 1e6:9.1f}  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
