#!/usr/bin/env python3
"""Helpers of benchmarks/gpu_check.sh: test data, the GPU-vs-CPU pixel check, the summary.

    python gpu_check.py data DIR [--count N]      ImageNet-sized JPEGs for the benchmark, made here
    python gpu_check.py info OUT.json              spdl.io.cuda_info() and the versions, as JSON
    python gpu_check.py pixels OUT.json [--dry-run] GPU pixels against the CPU path's
    python gpu_check.py summary OUTDIR             summary.md from the files the steps wrote

Nothing here needs anything but numpy, Pillow and spdl.io; the pixel check needs a
CUDA device (with --dry-run it only lists what it would compare).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------
# Data: photo-like JPEGs at ImageNet's sizes (mostly 500 x 333..500, 4:2:0, quality 90)

def _photo(w: int, h: int, seed: int, texture: bool = True) -> np.ndarray:
    """Smooth colour fields, texture and sensor-like noise: ~65 KB as a quality-90 JPEG at 500x375.

    Without texture (the pixel check's inputs): smooth fields and a little noise, the kind of
    content the GPU-vs-CPU tolerance of tests/test_cuda.py is stated for.
    """
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
    if texture:
        detail = Image.fromarray(rng.integers(0, 256, (h // 2 + 1, w // 2 + 1), dtype=np.uint8))
        detail = detail.resize((w, h), Image.BILINEAR).filter(ImageFilter.GaussianBlur(1))
        img = img + (np.asarray(detail, dtype=np.int16)[..., None] - 128) // 2
    amp = 10 if texture else 3
    img += rng.integers(-amp, amp + 1, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(args):
    i, path, w, h, kw = args
    from PIL import Image

    Image.fromarray(_photo(w, h, i)).save(path, "JPEG", **kw)
    return path


def make_data(out: Path, count: int, workers: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    jobs = []
    for i in range(count):
        w, h = (500, int(rng.integers(333, 501))) if rng.random() < 0.7 else (int(rng.integers(333, 501)), 500)
        jobs.append((i, str(out / f"img_{i:05d}.jpg"), w, h, {"quality": 90, "subsampling": 2}))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_encode, jobs, chunksize=16))
    size = sum(Path(j[1]).stat().st_size for j in jobs)
    return {"dir": str(out), "images": count, "bytes": size, "seconds": round(time.perf_counter() - t0, 2)}


# ---------------------------------------------------------------------------
# Pixels: nvJPEG + NPP against the CPU path (FFmpeg / libjpeg-turbo + swscale)

def pixel_inputs() -> list[tuple[str, bytes]]:
    """(name, JPEG bytes): the chroma subsamplings, progressive, grey, odd sizes."""
    from PIL import Image

    out = []
    for name, (w, h), kw in [
        ("420_500x375", (500, 375), {"subsampling": 2}),
        ("422_333x500", (333, 500), {"subsampling": 1}),
        ("444_640x480", (640, 480), {"subsampling": 0}),
        ("progressive_500x400", (500, 400), {"progressive": True}),
        ("420_odd_97x61", (97, 61), {"subsampling": 2}),
        ("420_big_1920x1080", (1920, 1080), {"subsampling": 2}),
    ]:
        b = io.BytesIO()
        Image.fromarray(_photo(w, h, len(out) + 100, texture=False)).save(b, "JPEG", quality=92, **kw)
        out.append((name, b.getvalue()))
    b = io.BytesIO()
    Image.fromarray(_photo(400, 300, 7, texture=False)).convert("L").save(b, "JPEG", quality=92)
    out.append(("gray_400x300", b.getvalue()))
    return out


#: The tolerance tests/test_cuda.py states for nvJPEG + NPP against the CPU path (0..255):
#: mean absolute difference below TOL_MEAN, 99th percentile at most TOL_P99. The CPU
#: decode + GPU copy must give the CPU path's bytes exactly.
TOL_MEAN = 3.0
TOL_P99 = 16

#: (width, height) of the outputs: shrinking (both ways), ImageNet's, enlarging.
SIZES = [(96, 64), (224, 224), (800, 600)]
PIX_FMTS = ["rgb24", "bgr24", "rgbp"]
SCALE_MODES = ["pad", "stretch"]


def _stats(got: np.ndarray, ref: np.ndarray) -> dict:
    d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    return {"max": int(d.max()), "mean": round(float(d.mean()), 3), "p99": float(np.percentile(d, 99)),
            "over_16": round(float((d > 16).mean()), 5)}


def check_pixels(dry_run: bool) -> dict:
    import spdl.io
    from spdl.io import CUDAConfig
    from spdl.io import _testing

    inputs = pixel_inputs()
    srcs = [b for _, b in inputs]
    plan = [{"pix_fmt": p, "scale_mode": m, "size": f"{w}x{h}"}
            for p in PIX_FMTS for m in SCALE_MODES for (w, h) in SIZES]
    out = {"inputs": [n for n, _ in inputs], "cases": []}
    if dry_run:
        out["would_compare"] = plan + [{"cpu_to_gpu": f"{w}x{h}"} for (w, h) in SIZES]
        return out
    cfg = CUDAConfig(0)
    for case in plan:
        w, h = map(int, case["size"].split("x"))
        pix_fmt, mode = case["pix_fmt"], case["scale_mode"]
        gpu = _testing.to_host(spdl.io.load_image_batch_nvjpeg(
            srcs, device_config=cfg, width=w, height=h, pix_fmt=pix_fmt, scale_mode=mode))
        # The same arguments on the CPU (rgbp is planar there too).
        cpu = np.asarray(spdl.io.load_image_batch(srcs, width=w, height=h, pix_fmt=pix_fmt, scale_mode=mode))
        row = dict(case, **_stats(gpu, cpu), per_input={n: _stats(gpu[i], cpu[i])["mean"]
                                                          for i, (n, _) in enumerate(inputs)})
        out["cases"].append(row)
    # CPU decode, GPU copy: the same bytes as the CPU path, exactly.
    for (w, h) in SIZES:
        gpu = _testing.to_host(spdl.io.load_image_batch(srcs, width=w, height=h, device_config=cfg))
        cpu = np.asarray(spdl.io.load_image_batch(srcs, width=w, height=h))
        out["cases"].append({"pix_fmt": "rgb24", "scale_mode": "pad", "size": f"{w}x{h}",
                             "method": "cpu_to_gpu", **_stats(gpu, cpu)})
    return out


# ---------------------------------------------------------------------------
# Info

def info() -> dict:
    import platform

    import spdl.io

    out = {"python": sys.version.split()[0], "platform": platform.platform(),
           "spdl_io": spdl.io.__file__, "cuda_info": spdl.io.cuda_info()}
    try:
        from spdl.io import _nvjpeg_decode

        if out["cuda_info"]["device_count"]:
            out["decoder_backends"] = _nvjpeg_decode.decoder_backends(0)
    except Exception as e:  # report, go on
        out["decoder_backends"] = f"{type(e).__name__}: {e}"
    for mod in ("numpy", "PIL", "pytest", "pytest_asyncio", "torch", "cupy"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as e:
            out[mod] = f"not importable: {type(e).__name__}"
    try:
        import torch

        out["torch_cuda"] = {"available": torch.cuda.is_available(), "version": torch.version.cuda,
                             "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    except Exception:
        pass
    return out


# ---------------------------------------------------------------------------
# Summary

def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except Exception:
        return None


def summary(outdir: Path) -> str:
    lines = ["# GPU check", ""]
    steps = []
    if (outdir / "steps.tsv").exists():
        for row in (outdir / "steps.tsv").read_text().splitlines():
            name, rc, secs, *note = row.split("\t")
            steps.append((name, int(rc), float(secs), note[0] if note else ""))
    ok = all(rc == 0 for _, rc, _, _ in steps)
    lines += [f"**{'PASSED' if ok else 'FAILED'}** in {sum(s for _, _, s, _ in steps):.0f} s", "",
              "| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for name, rc, secs, note in steps:
        status = "ok" if rc == 0 else ("timed out" if rc in (124, 137) else f"failed (exit {rc})")
        lines.append(f"| {name} | {status} | {secs:.1f} | {note} |")

    env = _load(outdir / "env.json") or {}
    ci = env.get("cuda_info") or {}
    if env:
        lines += ["", "## Machine", ""]
        for key in ("gpu", "driver", "nvcc", "python", "platform", "torch", "torch_cuda", "cupy", "pytest",
                    "pytest_asyncio"):
            if key in env:
                lines.append(f"* {key}: {env[key]}")
        lines += [f"* CUDA major used: {ci.get('cuda_major')} ({ci.get('reason')})",
                  f"* driver's CUDA version: {ci.get('driver_version')}; devices: {ci.get('device_count')}"
                  + (f" ({ci.get('device_error')})" if ci.get("device_error") else "")]
        for name in ("cudart", "nvjpeg", "nppc", "nppig", "libcuda"):
            lib = ci.get(name) or {}
            lines.append(f"* {name}: {lib.get('version')} at {lib.get('path')}"
                         + (f" — {lib.get('error', '').splitlines()[0]}" if lib.get("error") else ""))
        if "decoder_backends" in env:
            lines.append(f"* nvJPEG backends on device 0: {env['decoder_backends']}")

    junit = outdir / "pytest.xml"
    if junit.exists():
        try:
            root = ET.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root)
            tot = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
            lines += ["", "## Tests (SPDL_REQUIRE_GPU=1)", "",
                      f"{tot['tests']} tests: {tot['failures']} failed, {tot['errors']} errors, "
                      f"{tot['skipped']} skipped", ""]
            for case in root.iter("testcase"):
                for kind in ("failure", "error", "skipped"):
                    el = case.find(kind)
                    if el is not None:
                        msg = (el.get("message") or el.text or "").strip().splitlines()
                        lines.append(f"* {kind}: {case.get('classname')}::{case.get('name')}: "
                                     f"{msg[0][:300] if msg else ''}")
        except ET.ParseError as e:
            lines.append(f"pytest.xml unreadable: {e}")

    pixels = _load(outdir / "pixels.json")
    if pixels and pixels.get("cases"):
        lines += ["", "## GPU pixels against the CPU path (absolute difference, 0..255)", "",
                  "| method | pix_fmt | scale_mode | size | max | mean | p99 | share > 16 | ok |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in pixels["cases"]:
            lines.append(f"| {c.get('method', 'nvjpeg')} | {c['pix_fmt']} | {c['scale_mode']} | {c['size']} | "
                         f"{c['max']} | {c['mean']} | {c['p99']} | {c['over_16']} | "
                         f"{'yes' if c.get('within_tolerance') else 'NO'} |")
    bench = _load(outdir / "bench.json")
    if bench and bench.get("results"):
        lines += ["", f"## CPU vs GPU ({bench.get('images')} JPEGs, {bench.get('source')}, "
                      f"CPU with {bench.get('cpu_threads')} threads)", "",
                  "| method | images/s | batch | size |", "| --- | --- | --- | --- |"]
        for r in bench["results"]:
            lines.append(f"| {r['method']} | {r.get('images_per_s', r.get('error'))} | "
                         f"{r.get('batch_size', '')} | {r.get('size', '')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("dir", type=Path)
    p.add_argument("--count", type=int, default=1024)
    p = sub.add_parser("info")
    p.add_argument("out", type=Path)
    p = sub.add_parser("pixels")
    p.add_argument("out", type=Path)
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("summary")
    p.add_argument("outdir", type=Path)
    args = ap.parse_args()

    if args.cmd == "data":
        r = make_data(args.dir, args.count, min(16, os.cpu_count() or 1))
        print(json.dumps(r))
    elif args.cmd == "info":
        extra = {}
        if args.out.exists():
            extra = json.loads(args.out.read_text())
        extra.update(info())
        args.out.write_text(json.dumps(extra, indent=1))
        ci = extra["cuda_info"]
        print(json.dumps({k: ci[k] for k in ("cuda_major", "reason", "driver_version", "device_count")}))
        for name in ("cudart", "nvjpeg", "nppc", "nppig", "libcuda"):
            lib = ci[name]
            print(f"{name}: {lib['version']} {lib['path'] or (lib['error'] or '').splitlines()[0]}")
    elif args.cmd == "pixels":
        r = check_pixels(args.dry_run)
        bad = []
        for c in r["cases"]:
            exact = c.get("method") == "cpu_to_gpu"
            c["within_tolerance"] = c["max"] == 0 if exact else (c["mean"] < TOL_MEAN and c["p99"] <= TOL_P99)
            if not c["within_tolerance"]:
                bad.append(c)
            print(f"{c.get('method', 'nvjpeg'):>10} {c['pix_fmt']:>6} {str(c['scale_mode']):>5} {c['size']:>8}: "
                  f"max {c['max']:3d} mean {c['mean']:.3f} p99 {c['p99']}"
                  + ("" if c["within_tolerance"] else "  OUT OF TOLERANCE"))
        args.out.write_text(json.dumps(r, indent=1))
        if args.dry_run:
            print(f"would compare {len(r['would_compare'])} cases on {len(r['inputs'])} JPEGs: {r['inputs']}")
        if bad:
            print(f"{len(bad)} case(s) out of tolerance: cpu_to_gpu must be exact, nvjpeg within mean < "
                  f"{TOL_MEAN} and p99 <= {TOL_P99}")
            return 1
    elif args.cmd == "summary":
        text = summary(args.outdir)
        (args.outdir / "summary.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
