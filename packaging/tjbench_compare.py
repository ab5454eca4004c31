"""Compare builds of libjpeg-turbo with tjbench on a set of JPEGs (the figures of README.md).

    python packaging/tjbench_compare.py --images DIR --every 8 --reps 5 \
        "2.1.5 system=/p215/bin/tjbench" "2.1.5=/p215/bin/tjbench:/p215/lib" \
        "3.1.3=/p313/bin/tjbench:/p313/lib"

Each variant is NAME=TJBENCH[:LIBDIR] (LIBDIR goes into LD_LIBRARY_PATH; without it the
system's libturbojpeg is used). Every file runs under every variant, in rotating order,
before the next file; per file the best of the reps counts (on a shared machine other work
only slows a run). Prints images/s for decompression to YUV planes and to RGB, one thread.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess


def run(exe: str, lib: str, path: pathlib.Path, mode: str, scale: list[str]) -> float:
    """Seconds per decode of one file (tjbench's frame rate; its tables differ by version)."""
    out = subprocess.run([exe, str(path), "-" + mode, *scale, "-nowrite", "-benchtime", "0.1",
                          "-warmup", "0.02"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LD_LIBRARY_PATH=lib)).stdout
    label = "Decomp to YUV" if mode == "yuv" else "Decompress"
    fps = re.search(rf"^{label} +--> Frame rate: +([0-9.]+) fps", out, re.M).group(1)
    return 1 / float(fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=pathlib.Path, required=True)
    ap.add_argument("--every", type=int, default=8, help="take every Nth file")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", help="tjbench's -scale M/N (the DCT reduction), e.g. 1/2")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    files = sorted(args.images.glob("*.jpg"))[::args.every]
    variants = {}
    for v in args.variants:
        name, _, spec = v.partition("=")
        exe, _, lib = spec.partition(":")
        variants[name] = (exe, lib)
    names = list(variants)
    scale = ["-scale", args.scale] if args.scale else []
    t = {(n, m): [[] for _ in files] for n in names for m in ("yuv", "rgb")}
    k = 0
    for _ in range(args.reps):
        for mode in ("yuv", "rgb"):
            for i, f in enumerate(files):
                k += 1
                for n in names[k % len(names):] + names[:k % len(names)]:
                    t[(n, mode)][i].append(run(*variants[n], f, mode, scale))
    print(f"{len(files)} JPEGs of {args.images}, scale {args.scale or '1/1'}, one thread, "
          f"best of {args.reps} per file, images/s:")
    for mode, what in (("yuv", "to YUV planes"), ("rgb", "to RGB")):
        print(f"  {what}:")
        for n in names:
            best = sum(min(r) for r in t[(n, mode)])
            med = statistics.median(sum(r[i] for r in t[(n, mode)]) for i in range(args.reps))
            print(f"    {n:36s} best {len(files) / best:6.0f}   median rep {len(files) / med:6.0f}")


if __name__ == "__main__":
    main()
