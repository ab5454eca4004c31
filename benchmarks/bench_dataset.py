#!/usr/bin/env python3
"""The dataset iterator against the bare loader, on the same ImageNet-sized JPEGs.

    python benchmarks/bench_dataset.py [--threads 2] [--batch 64] [--reps 7]
                                       [--images 20000] [--out benchmarks/RESULTS_DATASET.md]

The images of ~/.cache/spdl-bench/imagenet (benchmarks/setup.sh fetches them) are copied
into a temporary folder tree of 4 classes and into 4 tar shards (WebDataset layout, with
.cls labels). Side by side, interleaved rep by rep, at --threads decoding threads,
batches of --batch at 224 x 224:

  bytes    load_image_batch(pre-read bytes, num_threads=T), one batch after another
  folder   iter_image_batches(folder tree, labels="folder", num_threads=T)
  tar      iter_image_batches(tar shards, num_threads=T)

Each rep goes over every image twice (two epochs) with each method, in an order that
rotates from rep to rep; images/s median over the quiet reps (other processes below
--max-foreign-load) and the ratio to ``bytes``. Then, in a fresh process, the folder iterator runs over --images
images (epoch after epoch, shuffled) while the peak RSS is sampled after every batch:
the curve must stay flat (prefetch is bounded).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import spdl.io

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _busy_jiffies  # noqa: E402

SRC = Path(os.environ.get("SPDL_BENCH_ROOT", "~/.cache/spdl-bench")).expanduser() / "imagenet"
SIZE = dict(width=224, height=224)


def make_dataset(root: Path, files: list[Path]) -> tuple[Path, list[str]]:
    folder = root / "folder"
    for i, f in enumerate(files):
        d = folder / f"class{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, d / f.name)
    shards = []
    per = -(-len(files) // 4)
    for s in range(4):
        path = root / f"shard-{s}.tar"
        with tarfile.open(path, "w") as tf:
            for i, f in enumerate(files[s * per:(s + 1) * per], s * per):
                tf.add(f, arcname=f"{f.stem}.jpg")
                info = tarfile.TarInfo(f"{f.stem}.cls")
                data = str(i % 4).encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        shards.append(str(path))
    return folder, shards


def run_bytes(data: list[bytes], batch: int, threads: int) -> int:
    n = 0
    for i in range(0, len(data), batch):
        buf = spdl.io.load_image_batch(data[i:i + batch], num_threads=threads, **SIZE)
        n += len(buf)
    return n


def run_epochs(it: spdl.io.ImageBatches, first_epoch: int, epochs: int = 2) -> int:
    """Iterate epochs of a dataset listed once (as a training job does: set_epoch)."""
    n = 0
    for e in range(first_epoch, first_epoch + epochs):
        it.set_epoch(e)
        for buf in it:
            n += len(buf)
    return n


def measure(fn: object, epoch: int) -> tuple[float, float]:
    """(images/s, the share of the machine other processes used meanwhile)."""
    hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    j0, c0, t0 = _busy_jiffies(), time.process_time(), time.perf_counter()
    n = fn(epoch)  # type: ignore[operator]
    j1, c1, t1 = _busy_jiffies(), time.process_time(), time.perf_counter()
    foreign = 0.0
    if j0 is not None and j1 is not None:
        foreign = max(0.0, ((j1 - j0) / hz - (c1 - c0)) / ((t1 - t0) * ncpu))
    return n / (t1 - t0), foreign


def rss_run(folder: str, images: int, batch: int, threads: int) -> None:
    """Child process: print 'images peak_rss_kib current_rss_kib' after every batch."""
    import resource

    done, epoch = 0, 0
    with spdl.io.iter_image_batches(folder, labels="folder", batch_size=batch,
                                    num_threads=threads, shuffle=True, **SIZE) as it:
        while done < images:
            it.set_epoch(epoch)
            for buf in it:
                done += len(buf)
                cur = 0
                with open("/proc/self/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            cur = int(line.split()[1])
                print(done, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cur, flush=True)
                if done >= images:
                    break
            epoch += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--max-foreign-load", type=float, default=0.15,
                    help="reps where other processes used more of the machine are reported apart")
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_DATASET.md")))
    ap.add_argument("--rss-child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_run(args.rss_child[0], args.images, args.batch, args.threads)
        return

    files = sorted(SRC.glob("*.jpg"))
    if not files:
        sys.exit(f"no JPEGs in {SRC}: run benchmarks/setup.sh first")
    with tempfile.TemporaryDirectory(prefix="spdl-bench-dataset-") as tmp:
        folder, shards = make_dataset(Path(tmp), files)
        data = [f.read_bytes() for f in files]
        listing: dict[str, float] = {}
        datasets = {}
        for name, src, kw in (("folder", folder, {"labels": "folder"}), ("tar", shards, {})):
            t0 = time.perf_counter()
            datasets[name] = spdl.io.iter_image_batches(
                src, batch_size=args.batch, num_threads=args.threads, shuffle=True, **kw, **SIZE)
            listing[name] = time.perf_counter() - t0
        methods = {
            "bytes": lambda ep: run_bytes(data, args.batch, args.threads) + run_bytes(
                data, args.batch, args.threads),
            "folder": lambda ep: run_epochs(datasets["folder"], ep),
            "tar": lambda ep: run_epochs(datasets["tar"], ep),
        }
        for m in methods.values():  # warm up: page cache, allocator pool
            m(100)
        all_rates: dict[str, list[float]] = {m: [] for m in methods}
        rates: dict[str, list[float]] = {m: [] for m in methods}  # quiet reps only
        for rep in range(args.reps):
            names = list(methods)
            names = names[rep % len(names):] + names[:rep % len(names)]  # rotate: no position bias
            got = {name: measure(methods[name], 2 * rep) for name in names}
            quiet = all(f <= args.max_foreign_load for _, f in got.values())
            for name, (r, f) in got.items():
                all_rates[name].append(r)
                if quiet:
                    rates[name].append(r)
            print(f"rep {rep}: " + ", ".join(f"{k} {r:.0f} img/s (others {f:.0%})"
                                              for k, (r, f) in got.items()), flush=True)
        for d in datasets.values():
            d.close()
        n_quiet = len(rates["bytes"])
        if n_quiet == 0:
            rates = all_rates
        med = {m: statistics.median(r) for m, r in rates.items()}
        # each rep's rate over the same rep's bytes rate: the machine's drift cancels out
        paired = {m: statistics.median(a / b for a, b in zip(r, rates["bytes"]))
                  for m, r in rates.items()}
        for m in methods:
            print(f"{m:8s} {med[m]:8.1f} img/s  ratio {med[m] / med['bytes']:.3f}  "
                  f"paired {paired[m]:.3f}  (min {min(rates[m]):.1f}, max {max(rates[m]):.1f})",
                  flush=True)

        cmd = [sys.executable, __file__, "--rss-child", str(folder), "--images", str(args.images),
               "--batch", str(args.batch), "--threads", str(args.threads)]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rss_secs = time.perf_counter() - t0
        rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    checkpoints = [r for r in rows if any(r[0] >= c and r[0] - args.batch < c
                                           for c in (1000, 2000, 5000, 10000, 15000, 20000))]
    first_epoch = next(r for r in rows if r[0] >= len(files))
    print(f"RSS: after the first epoch ({first_epoch[0]} images) peak {first_epoch[1] / 1024:.1f} MiB;"
          f" after {rows[-1][0]} images peak {rows[-1][1] / 1024:.1f} MiB, "
          f"current {rows[-1][2] / 1024:.1f} MiB")

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Dataset iterator vs the bare loader",
        "",
        f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- Command: `python benchmarks/bench_dataset.py --threads {args.threads} --batch "
        f"{args.batch} --reps {args.reps} --images {args.images}`",
        f"- Images: the {len(files)} ImageNet-sized JPEGs of {SRC} (page cache warm), "
        f"224 x 224 rgb24 (pad), batches of {args.batch}, {args.threads} decoding threads; "
        "each rep two epochs of each method, the methods' order rotating from rep to rep",
        f"- Reps: {args.reps}; {n_quiet} of them quiet (other processes used at most "
        f"{args.max_foreign_load:.0%} of the machine during each of the rep's three "
        f"measurements). The table is over "
        + ("the quiet reps." if n_quiet else "all reps (none was quiet)."),
        f"- Listing (once per dataset, not in the rates; each pass after it uses set_epoch): "
        f"folder {listing['folder'] * 1e3:.1f} ms, tar {listing['tar'] * 1e3:.1f} ms for "
        f"{len(files)} images (tarfile reads every member header: "
        f"{listing['tar'] / len(files) * 1e6:.0f} us an image here)",
        "",
        "| method | images/s (median) | min | max | vs bytes (medians) | vs bytes (median of per-rep ratios) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    desc = {"bytes": "load_image_batch(pre-read bytes)",
            "folder": "iter_image_batches(folder tree, labels='folder', shuffle=True)",
            "tar": "iter_image_batches(4 tar shards, shuffle=True)"}
    for m in rates:
        lines.append(f"| {desc[m]} | {med[m]:.1f} | {min(rates[m]):.1f} | {max(rates[m]):.1f} | "
                     f"{med[m] / med['bytes']:.3f} | {paired[m]:.3f} |")
    lines += [
        "",
        f"Memory over {rows[-1][0]} images (folder iterator, prefetch 2, shuffled epochs, "
        f"{rss_secs:.1f} s, a fresh process):",
        "",
        "| images | peak RSS (MiB) | RSS now (MiB) |",
        "|---:|---:|---:|",
    ]
    for r in checkpoints:
        lines.append(f"| {r[0]} | {r[1] / 1024:.1f} | {r[2] / 1024:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
