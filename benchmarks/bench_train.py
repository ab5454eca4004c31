#!/usr/bin/env python3
"""Training batches: random resized crop + flip (+ float32 normalised NCHW), side by side.

    python benchmarks/bench_train.py [--threads 1,2] [--batch-sizes 32,256] [--reps 5]
                                     [--min-seconds 1.5] [--methods ...] [--quick]

Every method turns a batch of encoded JPEGs (bytes in memory, read before any timing) into one
224x224 training batch: a random crop of 8-100% of the image's area with an aspect ratio of
3/4-4/3, resized to 224x224, flipped left-right with probability 0.5; uint8 NHWC (CHW for
torchvision, whose tensors are CHW), or float32 NCHW scaled to 0-1 and normalised with the
ImageNet mean and std.

Each library family (DALI, Pillow/torchvision, spdl) runs in its own long-lived worker process
(``bench_train.py --worker FAMILY``), so no library shares a process with another and imports
happen once.  The parent sends one measurement at a time and interleaves them: rep 1 of every
(threads, batch size, method), then rep 2, ...; inside a rep the methods of one (threads, batch
size) run back to back, in an order rotated every rep, so the ratios between methods compare
measurements taken seconds apart.  A measurement runs one untimed batch, then whole batches,
cycling through the set, until ``--min-seconds`` have passed, and reports images/s.  Ratios are
medians of the per-rep ratios (paired measurements), which tames the host's drift better than a
ratio of medians.

The parent also records how much CPU *other* processes used during each measurement
(``/proc/stat`` minus the worker's own CPU time) and repeats a measurement once when that was
more than ``--max-foreign-load`` of the machine.

Writes ``benchmarks/RESULTS_TRAIN.md`` and ``benchmarks/RESULTS_TRAIN.json`` (``--quick``
writes them under the cache root instead, so a smoke test never overwrites real numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import DEFAULT_ROOT, _busy_jiffies, _q, machine_info  # noqa: E402

SIZE = 224
AREA = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Names the region-only-decode switch might have in spdl.io._testing (a test hook; the row is
# skipped when none exists).
ROI_SWITCHES = ("use_jpeg_roi", "use_jpeg_region", "use_region_decode", "use_roi_decode",
                "use_jpeg_crop")


class Skip(Exception):
    """A method that cannot run here; the message says why."""


# --------------------------------------------------------------------------
# Methods (built inside the worker of their family; libraries imported lazily)
# --------------------------------------------------------------------------
# A builder gets (threads, batch, datas) and returns run(k) -> the k-th batch (an array or a
# tensor).  Batch k holds images (k*batch + j) % len(datas), j < batch.
def _batches(items: list, batch: int) -> list[list]:
    n = len(items)
    count = max(1, n // batch)
    return [[items[(k * batch + j) % n] for j in range(batch)] for k in range(count)]


def _dali(kind: str) -> Callable:
    def build(threads: int, batch: int, datas: list[bytes]):
        from nvidia.dali import fn, pipeline_def, types

        # prefetch_queue_depth=1: each run() works on the batch just fed and nothing ahead,
        # so a timed window holds exactly the batches it counts.
        @pipeline_def(batch_size=batch, num_threads=threads, device_id=None,
                      prefetch_queue_depth=1, seed=1234)
        def pipe():
            enc = fn.external_source(name="enc", dtype=types.UINT8)
            if kind == "full_rrc":
                img = fn.decoders.image(enc, device="cpu", output_type=types.RGB)
                img = fn.random_resized_crop(img, size=(SIZE, SIZE), random_area=AREA,
                                             random_aspect_ratio=RATIO)
            else:
                img = fn.decoders.image_random_crop(enc, device="cpu", output_type=types.RGB,
                                                    random_area=AREA, random_aspect_ratio=RATIO)
                img = fn.resize(img, resize_x=SIZE, resize_y=SIZE)
            coin = fn.random.coin_flip(probability=0.5)
            if kind == "rc_f32":
                return fn.crop_mirror_normalize(
                    img, dtype=types.FLOAT, output_layout="CHW", mirror=coin,
                    mean=[255 * m for m in MEAN], std=[255 * s for s in STD])
            return fn.flip(img, horizontal=coin)

        p = pipe()
        p.build()
        batches = _batches([np.frombuffer(d, np.uint8) for d in datas], batch)

        def run(k):
            p.feed_input("enc", batches[k % len(batches)])
            (out,) = p.run()
            return np.asarray(out.as_tensor())

        return run
    return build


def _torchvision(decoder: str, floats: bool) -> Callable:
    def build(threads: int, batch: int, datas: list[bytes]):
        import torch
        from torchvision.transforms import v2

        # Parallelism is the pool's only: torch's intra-op threads would otherwise use every
        # core in the 1-thread runs.
        torch.set_num_threads(1)
        steps = [v2.RandomResizedCrop(SIZE, scale=AREA, ratio=RATIO, antialias=True),
                 v2.RandomHorizontalFlip(0.5)]
        if floats:
            steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
        if decoder == "pil":
            from PIL import Image

            # torchvision's documented order: to a tensor first, then the transforms (faster
            # here than cropping and resizing the PIL image: 350 vs 300 images/s, one thread).
            tf = v2.Compose([v2.ToImage(), *steps])
            items = datas

            def one(data):
                with Image.open(io.BytesIO(data)) as im:
                    return tf(im.convert("RGB"))
        else:
            from torchvision.io import ImageReadMode, decode_jpeg

            tf = v2.Compose(steps)
            items = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]

            def one(data):
                return tf(decode_jpeg(data, mode=ImageReadMode.RGB))

        batches = _batches(items, batch)
        pool = ThreadPoolExecutor(threads) if threads > 1 else None

        def run(k):
            srcs = batches[k % len(batches)]
            outs = list(pool.map(one, srcs)) if pool else [one(d) for d in srcs]
            return torch.stack(outs)

        return run
    return build


def _roi_switch():
    import spdl.io._testing as hooks

    for name in ROI_SWITCHES:
        if hasattr(hooks, name):
            return name, getattr(hooks, name)
    return None, None


def _spdl(variant: str) -> Callable:
    def build(threads: int, batch: int, datas: list[bytes]):
        import spdl.io

        if variant == "fitpad":
            def kwargs(k):
                return {}
        else:
            rrc = getattr(spdl.io, "RandomResizedCrop", None)
            if rrc is None:
                raise Skip("spdl.io has no RandomResizedCrop yet")
            crop = rrc(scale=AREA, ratio=RATIO)
            extra = ({"dtype": "float32", "mean": MEAN, "std": STD, "layout": "NCHW"}
                     if variant == "rrc_f32" else {})

            def kwargs(k):
                return {"crop": crop, "hflip": 0.5, "seed": k, **extra}
        if variant == "rrc_noroi" and _roi_switch()[1] is None:
            raise Skip("spdl.io._testing has no region-only decode switch "
                       f"(looked for {', '.join(ROI_SWITCHES)})")
        # One event loop per measurement configuration, its default executor the N threads.
        loop = asyncio.new_event_loop()
        loop.set_default_executor(ThreadPoolExecutor(threads))
        batches = _batches(datas, batch)

        def run(k):
            coro = spdl.io.async_load_image_batch(batches[k % len(batches)], width=SIZE,
                                                  height=SIZE, **kwargs(k))
            return np.asarray(spdl.io.to_numpy(loop.run_until_complete(coro)))

        return run
    return build


@dataclass(frozen=True)
class Method:
    name: str
    family: str          # worker process: "dali", "torch" or "spdl"
    build: Callable
    out: str             # "uint8 NHWC", "uint8 NCHW", "float32 NCHW"
    label: str


METHODS = {m.name: m for m in [
    Method("dali_rc", "dali", _dali("rc"), "uint8 NHWC",
           "DALI CPU: decoders.image_random_crop (ROI decode) + resize + flip"),
    Method("dali_rc_f32", "dali", _dali("rc_f32"), "float32 NCHW",
           "DALI CPU: decoders.image_random_crop + resize + crop_mirror_normalize"),
    Method("dali_full_rrc", "dali", _dali("full_rrc"), "uint8 NHWC",
           "DALI CPU: decoders.image (full) + random_resized_crop + flip"),
    Method("tv_pil_u8", "torch", _torchvision("pil", False), "uint8 NCHW",
           "Pillow + torchvision v2: RandomResizedCrop + RandomHorizontalFlip"),
    Method("tv_pil_f32", "torch", _torchvision("pil", True), "float32 NCHW",
           "Pillow + torchvision v2: RandomResizedCrop + flip + ToDtype + Normalize"),
    Method("tv_decode_f32", "torch", _torchvision("tv", True), "float32 NCHW",
           "torchvision.io.decode_jpeg + v2: RandomResizedCrop + flip + ToDtype + Normalize"),
    Method("spdl_rrc", "spdl", _spdl("rrc"), "uint8 NHWC",
           "spdl: crop=RandomResizedCrop(), hflip=0.5"),
    Method("spdl_rrc_f32", "spdl", _spdl("rrc_f32"), "float32 NCHW",
           "spdl: RandomResizedCrop, hflip, float32 normalised NCHW"),
    Method("spdl_rrc_noroi", "spdl", _spdl("rrc_noroi"), "uint8 NHWC",
           "spdl: RandomResizedCrop, hflip, region-only decode off (whole image at the crop's scale)"),
    Method("spdl_fitpad", "spdl", _spdl("fitpad"), "uint8 NHWC",
           "spdl: fit + pad (today's default), for reference"),
]}

# (name, numerator, denominator, target): ratios of images/s, medians of per-rep ratios.
RATIOS = [
    ("spdl RRC / DALI image_random_crop (uint8)", "spdl_rrc", "dali_rc", ">= 2"),
    ("spdl RRC f32 / DALI image_random_crop + crop_mirror_normalize", "spdl_rrc_f32",
     "dali_rc_f32", None),
    ("spdl RRC / DALI full decode + random_resized_crop", "spdl_rrc", "dali_full_rrc", None),
    ("spdl RRC / Pillow + torchvision (uint8)", "spdl_rrc", "tv_pil_u8", None),
    ("spdl RRC f32 / Pillow + torchvision (float32)", "spdl_rrc_f32", "tv_pil_f32", None),
    ("spdl RRC f32 / torchvision decode_jpeg (float32)", "spdl_rrc_f32", "tv_decode_f32", None),
    ("spdl uint8 NHWC / float32 NCHW (cost of float output)", "spdl_rrc", "spdl_rrc_f32",
     "<= 1.15"),
    ("spdl region-only decode on / off", "spdl_rrc", "spdl_rrc_noroi", None),
    ("spdl RRC / spdl fit + pad", "spdl_rrc", "spdl_fitpad", None),
]


def _load_set(set_dir: Path, limit: int | None) -> list[bytes]:
    manifest = json.loads((set_dir / "manifest.json").read_text())
    names = [e["file"] for e in manifest["images"]]
    if limit:
        names = names[:limit]
    return [(set_dir / n).read_bytes() for n in names]


def _versions(family: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {"dali": ["nvidia-dali-cuda120", "numpy"],
            "torch": ["torch", "torchvision", "pillow", "numpy"],
            "spdl": ["spdl", "numpy"]}[family]
    out = {}
    for p in pkgs:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    if family == "spdl":
        try:
            name, _ = _roi_switch()
            out["roi switch"] = name or "none"
        except Exception as e:  # noqa: BLE001
            out["roi switch"] = f"{type(e).__name__}: {e}"
    return out


# --------------------------------------------------------------------------
# Worker process: one per family, driven by JSON lines on stdin
# --------------------------------------------------------------------------
def _check_output(name: str, out, batch: int) -> None:
    shape = tuple(out.shape)
    kind = METHODS[name].out
    dtype = "float32" if kind.startswith("float32") else "uint8"
    want = (batch, SIZE, SIZE, 3) if kind.endswith("NHWC") else (batch, 3, SIZE, SIZE)
    if shape != want or dtype not in str(out.dtype):
        raise RuntimeError(f"{name}: got {shape} {out.dtype}, want {want} {dtype}")


def worker_main(family: str, set_dir: Path, limit: int | None) -> None:
    datas = _load_set(set_dir, limit)
    runs: dict[tuple, Callable] = {}
    counters: dict[tuple, int] = {}

    def reply(obj):
        sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "quit":
            break
        if cmd == "versions":
            reply(_versions(family))
            continue
        name, threads, batch = req["method"], req["threads"], req["batch"]
        key = (name, threads, batch)
        c0, w0 = time.process_time(), time.perf_counter()
        switch = None
        try:
            if cmd == "prepare":
                run = METHODS[name].build(threads, batch, datas)
                for k in range(2):  # warm-up: library start-up, pools, first allocations
                    _check_output(name, run(k), batch)
                runs[key], counters[key] = run, 2
                reply({"ok": True, "cpu_s": time.process_time() - c0,
                       "wall_s": time.perf_counter() - w0})
                continue
            run = runs[key]
            if name == "spdl_rrc_noroi":
                switch = _roi_switch()[1]
                switch(False)
            k = counters[key]
            run(k)  # one untimed batch: the previous measurement was another method
            k += 1
            n, t0, tc0 = 0, time.perf_counter(), time.process_time()
            while True:
                run(k)
                k += 1
                n += batch
                dt = time.perf_counter() - t0
                if dt >= req["min_seconds"]:
                    break
            cpu = time.process_time() - tc0
            counters[key] = k
            reply({"ok": True, "images": n, "seconds": dt, "images_per_s": n / dt,
                   "cores_used": cpu / dt, "images_per_cpu_s": n / cpu if cpu else None,
                   "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0})
        except Skip as e:
            reply({"ok": False, "skip": str(e)})
        except Exception as e:  # noqa: BLE001
            tb = traceback.format_exc().strip().splitlines()
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"[:400], "where": tb[-3:]})
        finally:
            if switch is not None:
                switch(True)


# --------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------
class Workers:
    def __init__(self, args):
        self.args = args
        self.procs: dict[str, subprocess.Popen] = {}

    def _proc(self, family: str) -> subprocess.Popen:
        p = self.procs.get(family)
        if p is None or p.poll() is not None:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", family,
                   "--set-dir", str(self.args.set_dir)]
            if self.args.limit:
                cmd += ["--limit", str(self.args.limit)]
            log = open(self.args.root / f"train-worker-{family}.log", "a")
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=log, text=True, bufsize=1)
            self.procs[family] = p
        return p

    def ask(self, family: str, req: dict) -> dict:
        p = self._proc(family)
        hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        j0, t0 = _busy_jiffies(), time.monotonic()
        try:
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                if not line:
                    return {"ok": False, "error": f"{family} worker exited ({p.poll()}); "
                            f"see {self.args.root}/train-worker-{family}.log"}
                if line.startswith("RESULT "):
                    res = json.loads(line[7:])
                    break
        except BrokenPipeError:
            return {"ok": False, "error": f"{family} worker is gone"}
        j1, t1 = _busy_jiffies(), time.monotonic()
        if j0 is not None and j1 is not None and "cpu_s" in res and t1 > t0:
            others = (j1 - j0) / hz - res["cpu_s"]
            res["foreign_load"] = max(0.0, others / ((t1 - t0) * ncpu))
        return res

    def wait_quiet(self, limit_s: float) -> float:
        """Wait at most limit_s for a 0.5 s window in which other processes use less than
        --max-foreign-load of the machine; returns the seconds waited."""
        hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            j0, t0 = _busy_jiffies(), time.monotonic()
            if j0 is None:
                break
            time.sleep(0.5)
            load = (_busy_jiffies() - j0) / hz / ((time.monotonic() - t0) * ncpu)
            if load < self.args.max_foreign_load:
                break
        return time.monotonic() - start

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.stdin.write('{"cmd": "quit"}\n')
                    p.stdin.flush()
                    p.wait(timeout=30)
                except Exception:  # noqa: BLE001
                    p.kill()


def _median_ratio(results: list[dict], num: tuple, den: tuple, key: str) -> dict | None:
    by = {}
    for r in results:
        if r.get("ok") and r.get(key):
            by[(r["method"], r["threads"], r["batch"], r["rep"])] = r[key]
    ratios = [by[(*num, rep)] / by[(*den, rep)] for rep in sorted({k[3] for k in by})
              if (*num, rep) in by and (*den, rep) in by]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "n": len(ratios)}


def _ratio_entry(results, num, den, what, target, **where) -> dict:
    return {"what": what, "target": target, **where,
            "images_per_s": _median_ratio(results, num, den, "images_per_s"),
            "images_per_cpu_s": _median_ratio(results, num, den, "images_per_cpu_s")}


def summarize(results: list[dict], methods: list[str], threads: list[int],
              batches: list[int]) -> dict:
    rows = {}
    for m in methods:
        for t in threads:
            for b in batches:
                rs = [r for r in results if (r["method"], r["threads"], r["batch"]) == (m, t, b)]
                ok = [r for r in rs if r.get("ok")]
                if not ok:
                    why = next((r.get("skip") or r.get("error") for r in rs), "not run")
                    rows[f"{m}|{t}|{b}"] = {"ok": False, "why": why}
                    continue
                ips = [r["images_per_s"] for r in ok]
                rows[f"{m}|{t}|{b}"] = {
                    "ok": True, "median": statistics.median(ips), "min": min(ips),
                    "max": max(ips), "iqr": _q(ips, 0.75) - _q(ips, 0.25), "reps": len(ips),
                    "cores_used": statistics.median(r["cores_used"] for r in ok),
                    "images_per_cpu_s": statistics.median(r["images_per_cpu_s"] for r in ok),
                    "foreign_load_max": max(r.get("foreign_load", 0.0) for r in ok)}
    ratios = [_ratio_entry(results, (num, t, b), (den, t, b), what, target, threads=t, batch=b)
              for what, num, den, target in RATIOS if num in methods and den in methods
              for t in threads for b in batches]
    per_batch = []
    if 32 in batches and 256 in batches:
        per_batch = [_ratio_entry(results, (m, t, 32), (m, t, 256), m,
                                  ">= 0.95" if m.startswith("spdl") else None, threads=t)
                     for m in methods for t in threads]
    return {"rows": rows, "ratios": ratios, "batch_32_vs_256": per_batch}


def _meets(target: str | None, value: float | None) -> str:
    if target is None or value is None:
        return ""
    op, bound = target.split()
    ok = value >= float(bound) if op == ">=" else value <= float(bound)
    return " ok" if ok else " **short**"


def _ratio_cell(entry: dict) -> str:
    r, c = entry["images_per_s"], entry["images_per_cpu_s"]
    if r is None:
        return "n/a"
    cell = f"{r['median']:.2f}{_meets(entry['target'], r['median'])} [{r['min']:.2f}-{r['max']:.2f}]"
    return cell + (f" ({c['median']:.2f})" if c else "")


def write_report(args, argv, info, versions, summary, results, started) -> None:
    threads, batches, methods = args.threads, args.batch_sizes, args.methods
    cols = [(t, b) for t in threads for b in batches]
    head = " | ".join(f"{t} thr, batch {b}" for t, b in cols)
    L = ["# Training batches: random resized crop + flip, side by side", ""]
    L += [f"Generated {started} by:", "", "```", "$ " + shlex.join(argv), "```", ""]
    L += [f"* Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"{info['memory']}; {info['os']}; Python {info['python']}; spdl at git "
          f"{info['git']}"]
    for fam, v in versions.items():
        L.append(f"* {fam} worker: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    L += [f"* Set `{args.set}` ({args.n_images} ImageNet-sized JPEGs, bytes in memory), "
          f"224x224 out; {args.reps} reps interleaved, each >= {args.min_seconds} s of whole "
          f"batches after one untimed batch; median images/s.", ""]
    L += ["## images/s (median of reps)", "", f"| method | output | {head} |",
          "|---|---|" + "---:|" * len(cols)]
    for m in methods:
        cells = []
        for t, b in cols:
            row = summary["rows"][f"{m}|{t}|{b}"]
            cells.append(f"{row['median']:,.0f}" if row["ok"] else "n/a")
        L.append(f"| `{m}` | {METHODS[m].out} | " + " | ".join(cells) + " |")
    L += ["", "Methods:", ""]
    L += [f"* `{m}`: {METHODS[m].label}" for m in methods]
    skipped = {m: summary["rows"][f"{m}|{t}|{b}"]["why"] for m in methods for t, b in cols
              if not summary["rows"][f"{m}|{t}|{b}"]["ok"]}
    if skipped:
        L += ["", "Not measured:", ""] + [f"* `{m}`: {why}" for m, why in skipped.items()]
    L += ["", "## Ratios", "",
          "Median of the per-rep ratios of images/s, [min-max], and in parentheses the same "
          "ratio of images per CPU-second (hardly touched by other load on the host, blind to "
          "what threads buy).", "", f"| ratio | target | {head} |",
          "|---|---|" + "---:|" * len(cols)]
    for what, _, _, target in RATIOS:
        entries = [e for e in summary["ratios"] if e["what"] == what]
        if entries:
            L.append(f"| {what} | {target or ''} | "
                     + " | ".join(_ratio_cell(e) for e in entries) + " |")
    if summary["batch_32_vs_256"]:
        L += ["", "Batch of 32 / batch of 256 (images/s, same method and threads):", "",
              "| method | target | " + " | ".join(f"{t} thr" for t in threads) + " |",
              "|---|---|" + "---:|" * len(threads)]
        for m in methods:
            entries = [e for e in summary["batch_32_vs_256"] if e["what"] == m]
            L.append(f"| `{m}` | {entries[0]['target'] or ''} | "
                     + " | ".join(_ratio_cell(e) for e in entries) + " |")
    L += ["", "## Spread and CPU", "",
          "| method | threads | batch | median | min-max | IQR | cores used | images/CPU-s "
          "| other load (max) |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for m in methods:
        for t, b in cols:
            row = summary["rows"][f"{m}|{t}|{b}"]
            if row["ok"]:
                L.append(f"| `{m}` | {t} | {b} | {row['median']:,.0f} | {row['min']:,.0f}-"
                         f"{row['max']:,.0f} | {row['iqr']:,.0f} | {row['cores_used']:.2f} | "
                         f"{row['images_per_cpu_s']:,.0f} | {row['foreign_load_max']:.0%} |")
    L += ["", "\"cores used\" is the worker's CPU time over wall time while timed; \"other "
          "load\" the share of the machine other processes used meanwhile.", ""]
    args.out_md.write_text("\n".join(L))
    args.out_json.write_text(json.dumps(
        {"argv": argv, "started": started, "machine": info, "versions": versions,
         "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "summary": summary, "results": results}, indent=1))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--set-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--set", default="imagenet")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-sizes", default="32,256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=1.5)
    ap.add_argument("--limit", type=int, default=0, help="use the first N images of the set")
    ap.add_argument("--max-foreign-load", type=float, default=0.2)
    ap.add_argument("--busy-wait", type=float, default=3.0,
                    help="before a measurement, wait at most this long for a quiet moment")
    ap.add_argument("--busy-wait-total", type=float, default=90.0,
                    help="... and at most this long over the whole run")
    ap.add_argument("--quick", action="store_true",
                    help="64 images, 1 rep, 0.3 s; report under the cache root")
    ap.add_argument("--out", type=Path, default=None, help="markdown report path")
    ap.add_argument("--report-from", type=Path, default=None,
                    help="re-render the report from a stored RESULTS_TRAIN.json, measure nothing")
    args = ap.parse_args(argv)
    args.root = args.root.expanduser()
    if args.worker:
        return args
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    args.threads = [int(x) for x in args.threads.split(",")]
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    if args.quick:
        args.limit, args.reps, args.min_seconds = args.limit or 64, 1, 0.3
    args.set_dir = args.root / args.set
    if args.out is None:
        args.out = (args.root / "RESULTS_TRAIN-quick.md") if args.quick \
            else HERE / "RESULTS_TRAIN.md"
    args.out_md, args.out_json = args.out, args.out.with_suffix(".json")
    return args


def report_only(args) -> int:
    stored = json.loads(args.report_from.read_text())
    for k in ("methods", "threads", "batch_sizes", "reps", "min_seconds", "set", "n_images"):
        setattr(args, k, stored["settings"][k])
    summary = summarize(stored["results"], args.methods, args.threads, args.batch_sizes)
    if args.out_json.resolve() == args.report_from.resolve():
        args.out_json = args.out_json.with_suffix(".rerendered.json")
    write_report(args, stored["argv"], stored["machine"], stored["versions"], summary,
                 stored["results"], stored["started"])
    print(f"wrote {args.out_md}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.set_dir, args.limit or None)
        return 0
    if args.report_from:
        return report_only(args)
    if not (args.set_dir / "manifest.json").exists():
        print(f"no image set at {args.set_dir}: run benchmarks/setup.sh (or data.py) first")
        return 1
    args.n_images = len(_load_set(args.set_dir, args.limit or None))
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    # The commit measured is the one checked out when the workers start (an editable install
    # loads the working tree's modules, so say when spdl/ has uncommitted changes).
    info = machine_info()
    dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "spdl"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        info["git"] += " + uncommitted changes in spdl/"
    t_start = time.monotonic()
    workers = Workers(args)
    cfgs = [(t, b) for t in args.threads for b in args.batch_sizes]
    results: list[dict] = []
    runnable = []
    try:
        families = sorted({METHODS[m].family for m in args.methods})
        versions = {f: workers.ask(f, {"cmd": "versions"}) for f in families}
        for m in args.methods:
            for t, b in cfgs:
                res = workers.ask(METHODS[m].family, {"cmd": "prepare", "method": m,
                                                      "threads": t, "batch": b})
                if res.get("ok"):
                    runnable.append((m, t, b))
                else:
                    why = res.get("skip") or res.get("error")
                    print(f"[train] {m} {t} thr batch {b}: not measured: {why}", flush=True)
                    results.append({"method": m, "threads": t, "batch": b, "rep": 0, **res})
        print(f"[train] prepared {len(runnable)} configurations in "
              f"{time.monotonic() - t_start:.0f} s", flush=True)
        # At most one re-measurement per measurement, and a fifth of them in all: on a host
        # that stays busy, re-measuring only makes the run longer.
        retries_left = max(2, len(runnable) * args.reps // 5)
        wait_left = args.busy_wait_total
        for rep in range(args.reps):
            for t, b in cfgs:
                ms = [m for m in args.methods if (m, t, b) in runnable]
                if not ms:
                    continue
                shift = rep % len(ms)
                for m in ms[shift:] + ms[:shift]:
                    req = {"cmd": "measure", "method": m, "threads": t, "batch": b,
                           "min_seconds": args.min_seconds}
                    if wait_left > 0:
                        wait_left -= workers.wait_quiet(min(args.busy_wait, wait_left))
                    res = workers.ask(METHODS[m].family, req)
                    if (res.get("ok") and res.get("foreign_load", 0) > args.max_foreign_load
                            and retries_left > 0):
                        print(f"        busy machine ({res['foreign_load']:.0%} other load); "
                              "measuring again", flush=True)
                        retries_left -= 1
                        again = workers.ask(METHODS[m].family, req)
                        if again.get("ok"):
                            res = again
                    results.append({"method": m, "threads": t, "batch": b, "rep": rep, **res})
                    shown = (f"{res['images_per_s']:8,.0f} img/s  cores {res['cores_used']:.2f}"
                             f"  other {res.get('foreign_load', 0):.0%}") if res.get("ok") \
                        else f"failed: {res.get('error') or res.get('skip')}"
                    print(f"[train] rep {rep + 1}/{args.reps} {t} thr b{b:<4} {m:<15} {shown}",
                          flush=True)
    finally:
        workers.close()
    summary = summarize(results, args.methods, args.threads, args.batch_sizes)
    write_report(args, [Path(sys.executable).name, "benchmarks/bench_train.py", *argv],
                 info, versions, summary, results, started)
    print(f"[train] {time.monotonic() - t_start:.0f} s; wrote {args.out_md} and "
          f"{args.out_json}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
