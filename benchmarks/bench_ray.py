#!/usr/bin/env python3
"""Ray Data on one machine: spdl.io.ray.read_images vs ray.data.read_images.

    python benchmarks/bench_ray.py [--dir ~/.cache/spdl-bench/imagenet] [--cpus 2] [--reps 5]

Every method makes the same (N, 224, 224, 3) uint8 RGB batches from the same JPEG
folder on a local Ray cluster of --cpus CPUs, consumed with ``iter_batches``:

- ``spdl read_images``: ``spdl.io.ray.read_images(dir, width=224, height=224,
  scale_mode="stretch")``: rows of paths, decoded by Ray tasks (ImageDecoder, one thread
  per task's CPU) that read the files themselves; and the same with ``concurrency=--cpus``:
  a pool of ImageDecoder actors, which a pass waits for to start.
- ``spdl ImageDecoder on read_binary_files``: Ray reads the files into an Arrow binary
  column (``ray.data.read_binary_files``), ImageDecoder decodes it in tasks (the path for
  data Ray already holds: Parquet, object stores).
- ``ray.data.read_images``: Ray's own reader (Pillow), ``size=(224, 224), mode="RGB"``.
  Its size= stretches to the box, so spdl is run with ``scale_mode="stretch"`` too. Ray
  resizes with Pillow's BILINEAR (antialiased); spdl with its default bicubic, the
  costlier filter.

The baseline is ``spdl.io.load_image_batch`` on the same files as pre-read bytes, in this
process before Ray starts, with --cpus threads: what Ray's overhead is measured against
(per image: 1/rate_ray - 1/rate_plain). Each timed run builds the dataset and iterates it
to the end (listing, scheduling, worker start, decode, transfer to the driver): the cost of
one pass, as a user pays it. Runs are interleaved (one of each method per rep), after one
untimed warm-up run of each; the median over reps is reported. Writes
benchmarks/RESULTS_RAY.md (--out to change).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

import spdl.io

HERE = Path(__file__).resolve().parent
SIZE = 224
EXTS = (".jpg", ".jpeg", ".png")


HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:3]) + sum(v[5:8])) / HZ


def _tree_times() -> dict[int, int]:
    """{pid: CPU clock ticks} of this process and its descendants (the local Ray cluster:
    raylet, workers, actors)."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(c for c, (ppid, _) in stats.items() if ppid == pid and c not in tree)
    return {p: stats[p][1] for p in tree if p in stats}


def _measured(fn):
    """(result, seconds, share of the CPUs that processes outside this tree used meanwhile).

    The tree is sampled every 100 ms while fn runs: Ray reaps the actors it ends without
    accounting their time to a parent, so each process counts as last seen."""
    start = _tree_times()
    last = dict(start)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            last.update(_tree_times())

    sampler = threading.Thread(target=sample, daemon=True)
    b0, t0 = _busy_s(), time.perf_counter()
    sampler.start()
    got = fn()
    wall = time.perf_counter() - t0
    busy = _busy_s() - b0
    done.set()
    sampler.join()
    last.update(_tree_times())
    own = sum(t - start.get(p, 0) for p, t in last.items()) / HZ
    return got, wall, max(0.0, (busy - own) / (wall * NCPU))


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in EXTS)


def _plain(blobs: list[bytes], threads: int, batch_size: int) -> float:
    """images/s of load_image_batch on pre-read bytes, in this process."""
    def load(srcs):
        return spdl.io.load_image_batch(srcs, width=SIZE, height=SIZE, scale_mode="stretch",
                                        num_threads=threads)
    t0 = time.perf_counter()
    n = 0
    for i in range(0, len(blobs), batch_size):
        n += spdl.io.to_numpy(load(blobs[i:i + batch_size])).shape[0]
    return n / (time.perf_counter() - t0)


def _consume(ds, column: str, batch_size: int) -> tuple[int, float]:
    """Iterate ds to the end: (rows, seconds until the first batch arrived)."""
    t0 = time.perf_counter()
    n, first = 0, 0.0
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        x = batch[column]
        assert x.shape[1:] == (SIZE, SIZE, 3) and x.dtype == np.uint8, (x.shape, x.dtype)
        if not n:
            first = time.perf_counter() - t0
        n += x.shape[0]
    return n, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("~/.cache/spdl-bench/imagenet").expanduser())
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS_RAY.md")
    ap.add_argument("--max-foreign", type=float, default=0.15,
                    help="a rep during which other processes used more than this share of the "
                         "CPUs is run again (at most 3 tries per rep)")
    args = ap.parse_args()

    files = _files(args.dir)
    if not files:
        sys.exit(f"no images under {args.dir} (python benchmarks/data.py makes them)")
    n = len(files)
    blobs = [Path(f).read_bytes() for f in files]
    bs = args.batch_size

    plain = []
    for _ in range(args.reps):
        for _try in range(3):
            rate, _, foreign = _measured(lambda: _plain(blobs, args.cpus, bs))
            if foreign <= args.max_foreign:
                break
        plain.append(rate)

    import ray
    import ray.data

    import spdl.io.ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False
    root = str(args.dir)

    def ours():
        ds = spdl.io.ray.read_images(root, width=SIZE, height=SIZE, scale_mode="stretch",
                                     batch_size=bs)
        return _consume(ds, "pixels", bs)

    def ours_actors():
        ds = spdl.io.ray.read_images(root, width=SIZE, height=SIZE, scale_mode="stretch",
                                     batch_size=bs, concurrency=args.cpus)
        return _consume(ds, "pixels", bs)

    def ours_bytes():
        ds = ray.data.read_binary_files(root, file_extensions=[e[1:] for e in EXTS])
        decoder = spdl.io.ray.ImageDecoder(SIZE, SIZE, column="bytes", scale_mode="stretch")
        ds = ds.map_batches(decoder, batch_size=bs, batch_format="pyarrow")
        return _consume(ds, "pixels", bs)

    def theirs():
        ds = ray.data.read_images(root, size=(SIZE, SIZE), mode="RGB")
        return _consume(ds, "image", bs)

    methods = {
        "spdl read_images (Ray tasks: the default)": ours,
        f"spdl read_images (concurrency={args.cpus}: actors)": ours_actors,
        "spdl ImageDecoder on read_binary_files (tasks)": ours_bytes,
        "ray.data.read_images (Pillow)": theirs,
    }
    times: dict[str, list[float]] = {m: [] for m in methods}
    firsts: dict[str, list[float]] = {m: [] for m in methods}
    steady: dict[str, list[float]] = {m: [] for m in methods}
    others: dict[str, list[float]] = {m: [] for m in methods}
    foreign_max = 0.0
    for name, fn in methods.items():  # warm-up: worker processes, imports, Ray Data's first plan
        assert fn()[0] == n, name
    for _ in range(args.reps):
        for name, fn in methods.items():
            for _try in range(3):
                (got, first), dt, foreign = _measured(fn)
                assert got == n, (name, got, n)
                if foreign <= args.max_foreign:
                    break
            foreign_max = max(foreign_max, foreign)
            times[name].append(dt)
            firsts[name].append(first)
            steady[name].append((n - bs) / max(dt - first, 1e-9))
            others[name].append(foreign)
            print(f"{name}: {n / dt:.0f} images/s, first batch {first:.2f} s, "
                  f"other load {foreign:.0%}", file=sys.stderr, flush=True)
    ray.shutdown()

    plain_rate = statistics.median(plain)
    rates = {m: n / statistics.median(t) for m, t in times.items()}
    theirs_rate = rates["ray.data.read_images (Pillow)"]
    rows = []
    for m, rate in rates.items():
        spread = f"{n / max(times[m]):,.0f}-{n / min(times[m]):,.0f}"
        overhead = (1 / rate - 1 / plain_rate) * 1e6
        first = statistics.median(firsts[m])
        rows.append(f"| {m} | **{rate:,.0f}** | {spread} | {rate / theirs_rate:.2f}x | "
                    f"{first:.2f} | {statistics.median(steady[m]):,.0f} | {overhead:,.0f} | "
                    f"{statistics.median(others[m]):.0%} |")
    report = _report(args, n, plain, plain_rate, rows, ray_start, foreign_max)
    args.out.write_text(report)
    print(report)


def _report(args, n: int, plain: list[float], plain_rate: float, rows: list[str],
            ray_start: float, foreign_max: float) -> str:
    import ray

    try:
        import PIL
        pil = PIL.__version__
    except ImportError:
        pil = "-"
    import pyarrow

    sys.path.insert(0, str(HERE))
    from run import machine_info

    m = machine_info()
    cmd = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_ray.py", *sys.argv[1:]])
    return f"""# Ray Data: spdl.io.ray vs ray.data.read_images

- Command: `{cmd}`
- Date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
- Machine: {m["cpu"]}, {m["cores"]} cores, {m["memory"]}; {m["os"]}; repo {m["git"]}
- Ray cluster: `ray.init(num_cpus={args.cpus})` on it (started in {ray_start:.1f} s, not timed
  below)
- Python {platform.python_version()}, Ray {ray.__version__}, pyarrow {pyarrow.__version__},
  Pillow {pil}, numpy {np.__version__}, spdl {spdl.io.__version__}
- Data: {n} ImageNet-sized JPEGs (`{args.dir}`, made by `benchmarks/data.py`), in the page cache
- Output of every method: (N, {SIZE}, {SIZE}, 3) uint8 RGB, stretched to the box (Ray's
  `size=` stretches; spdl runs with `scale_mode="stretch"`; Ray resizes with Pillow's
  antialiased bilinear, spdl with its bicubic), consumed with
  `iter_batches(batch_size={args.batch_size}, batch_format="numpy")`
- Reps: {args.reps}, interleaved, after one untimed warm-up run of each; a run builds the
  dataset and iterates it to the end; a rep during which other processes used more than
  {args.max_foreign:.0%} of the CPUs is run again (at most 3 tries; the most any kept rep saw:
  {foreign_max:.0%})

| method | images/s (median) | min-max | x ray.data.read_images | first batch after (s) | images/s after the first batch | Ray's overhead per image (us) | other load (median) |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Baseline: `spdl.io.load_image_batch` on the same images as pre-read bytes, in a plain
process (no Ray), {args.cpus} threads, batches of {args.batch_size}: {plain_rate:,.0f} images/s
(min-max {min(plain):,.0f}-{max(plain):,.0f}). Overhead per image is
1/rate - 1/baseline: what Ray's scheduling, block transfer and the pass's fixed costs
(listing, worker or actor start) add to each image, for that method. "After the first
batch" is the rate of the rest of the pass (rows after the first {args.batch_size} / time
after it arrived): close to what a long pass gets. "Other load" is the share of the
CPUs that processes outside this benchmark's process tree (its Ray cluster included)
used during a rep.
"""


if __name__ == "__main__":
    main()
