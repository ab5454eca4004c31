#!/usr/bin/env python3
"""spdl-ingest end to end vs load_image_batch on pre-read bytes (issue 11's CLI reach).

    .venv/bin/python benchmarks/bench_cli.py [--set-dir DIR] [--threads 2] [--reps 7]

The set: the 512 ImageNet-sized JPEGs of benchmarks/data.py (``~/.cache/spdl-bench/imagenet``,
files in the page cache after a warm-up), 224 x 224 rgb24, pad, bicubic, batch 64. Interleaved
per repetition, each in this process:

``bytes``     load_image_batch over the files' bytes read beforehand, in batches of 64,
              ``num_threads`` workers: decoding and resizing only (the reference).
``iter``      spdl.io.iter_image_batches over the folder, nothing written (where the CLI's
              time goes: listing, reading, decoding).
``cli``       spdl.io._cli.run: list the folder, read, decode, copy rows into shards, write
              the .npz shards (one of 1000 inputs: the whole set), progress.json, the contact
              sheet and summary.json, into a fresh OUT on the same disk as the set.
``cli-128``   the same with --shard-size 128 (four shards: writing overlaps decoding).

and, fewer times, ``python -m spdl.ingest`` as a subprocess (interpreter start and imports
included). Before each repetition it waits (at most --quiet-wait s) for a second in which other
processes use under --max-foreign-load of the CPUs, and it keeps only the repetitions during
which they stayed under it (the machine is shared). Reports images/s (median, and best) and
the median over repetitions of each method's ratio to ``bytes`` in the same repetition (the
reach: cli >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import spdl.io
from spdl.io import _cli

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
ROOT = Path(os.environ.get("SPDL_BENCH_ROOT", Path.home() / ".cache" / "spdl-bench"))


def _busy_s() -> float:
    """CPU seconds used by everything on the machine so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:3]) + sum(v[5:8])) / HZ


def _own_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ru.ru_utime + ru.ru_stime


def wait_quiet(limit_s: float, max_load: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        b0, t0 = _busy_s(), time.monotonic()
        time.sleep(1.0)
        if (_busy_s() - b0) / ((time.monotonic() - t0) * NCPU) < max_load:
            return


def measured(fn) -> tuple[float, float]:
    """(seconds fn took, share of the CPUs other processes used meanwhile)."""
    b0, c0, t0 = _busy_s(), _own_s(), time.perf_counter()
    dt = fn()
    wall = time.perf_counter() - t0
    foreign = (_busy_s() - b0) - (_own_s() - c0)
    return dt, max(0.0, foreign / (wall * NCPU))


def bytes_run(datas: list[bytes], threads: int, batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(datas), batch):
        buf = spdl.io.load_image_batch(datas[i:i + batch], width=224, height=224,
                                       num_threads=threads)
        assert buf.shape[0] == len(datas[i:i + batch])
    return time.perf_counter() - t0


def iter_run(src: Path, threads: int, batch: int) -> float:
    t0 = time.perf_counter()
    with spdl.io.iter_image_batches(str(src), batch_size=batch, width=224, height=224,
                                    num_threads=threads) as it:
        rows = sum(len(b) for b in it)
    assert rows > 0
    return time.perf_counter() - t0


def cli_argv(src: Path, out: Path, threads: int, batch: int, shard: int) -> list[str]:
    return [str(src), str(out), "--width", "224", "--height", "224", "--threads", str(threads),
            "--batch-size", str(batch), "--format", "npy", "--shard-size", str(shard), "--quiet"]


def cli_run(src: Path, work: Path, threads: int, batch: int, shard: int) -> float:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    opts = _cli.parse_options(cli_argv(src, out, threads, batch, shard))
    t0 = time.perf_counter()
    summary = _cli.run(opts)
    dt = time.perf_counter() - t0
    assert summary["complete"] and summary["images_failed"] == 0, summary
    return dt


def subprocess_run(src: Path, work: Path, threads: int, batch: int) -> float:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spdl.ingest",
                    *cli_argv(src, out, threads, batch, 1000)], check=True)
    return time.perf_counter() - t0


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} CPUs, {platform.platform()}, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set-dir", type=Path, default=ROOT / "imagenet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--subprocess-reps", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="before each rep, wait at most this long for a quiet second")
    ap.add_argument("--max-foreign-load", type=float, default=0.10,
                    help="leave out reps where other processes used more of the CPUs")
    ap.add_argument("--json", type=Path, default=None, help="write the raw times here")
    args = ap.parse_args()

    paths = sorted(str(p) for p in args.set_dir.glob("*.jpg"))
    if not paths:
        print(f"no JPEGs in {args.set_dir}: run benchmarks/data.py first", file=sys.stderr)
        return 1
    n = len(paths)
    datas = [Path(p).read_bytes() for p in paths]
    work = Path(tempfile.mkdtemp(prefix="bench_cli_", dir=args.set_dir.parent))
    kinds = {
        "bytes": lambda: bytes_run(datas, args.threads, args.batch_size),
        "iter": lambda: iter_run(args.set_dir, args.threads, args.batch_size),
        "cli": lambda: cli_run(args.set_dir, work, args.threads, args.batch_size, 1000),
        "cli-128": lambda: cli_run(args.set_dir, work, args.threads, args.batch_size, 128),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    ratios: dict[str, list[float]] = {k: [] for k in kinds}
    skipped = 0
    try:
        for fn in kinds.values():  # warm-up: page cache, buffer pool, imports
            fn()
        for rep in range(args.reps * 3):
            if len(times["bytes"]) >= args.reps:
                break
            wait_quiet(args.quiet_wait, args.max_foreign_load / 2)
            order = list(kinds)[rep % len(kinds):] + list(kinds)[:rep % len(kinds)]
            got = {k: measured(kinds[k]) for k in order}
            if any(f > args.max_foreign_load for _, f in got.values()):
                skipped += 1
                continue
            for k, (dt, _) in got.items():
                times[k].append(dt)
                ratios[k].append(got["bytes"][0] / dt)
        times["python -m"] = []
        for _ in range(args.subprocess_reps):
            wait_quiet(args.quiet_wait, args.max_foreign_load / 2)
            times["python -m"].append(subprocess_run(args.set_dir, work, args.threads,
                                                     args.batch_size))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not times["bytes"]:
        print("no quiet repetition: the machine stayed busy", file=sys.stderr)
        return 1

    med = {k: n / float(np.median(v)) for k, v in times.items()}
    best = {k: n / min(v) for k, v in times.items()}
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {n} images from "
          f"{args.set_dir}; {args.threads} threads; batch {args.batch_size}; "
          f"{len(times['bytes'])} quiet interleaved reps ({skipped} left out for other load "
          f"> {args.max_foreign_load:.0%}); python -m: {args.subprocess_reps} runs")
    print()
    print("| method | images/s (median) | best | vs bytes (median of per-rep ratios) |")
    print("|---|---:|---:|---:|")
    for k in times:
        r = float(np.median(ratios[k])) if ratios.get(k) else med[k] / med["bytes"]
        print(f"| {k} | {med[k]:,.0f} | {best[k]:,.0f} | {r:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"images": n, "threads": args.threads, "times": times,
                                         "ratios": ratios},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
