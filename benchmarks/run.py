#!/usr/bin/env python3
"""Benchmark spdl's batch image loading against peer libraries.

    python benchmarks/run.py [--sets imagenet,fullsize,png] [--methods ...]
                             [--threads 1,2] [--reps 5] [--quick]

Every (set, threads, method) measurement runs in a fresh worker process
(``benchmarks/_worker.py``).  Methods of the reference SPDL (``spdl-io`` from
PyPI, which is also called ``spdl.io``) run with the python of its own
virtualenv.  Repetitions are interleaved: rep 1 of every combination, then
rep 2, and so on, so slow drifts of the machine hit all methods alike.

Reported per combination: median images/s with min-max and IQR over reps,
ratio to ``ours`` (same set and thread count), mean absolute difference vs
the Pillow float32 reference (on 0..255 values), and peak RSS of the worker
(``ru_maxrss``) while it processes batches of 256 images.

Writes a markdown report to ``benchmarks/RESULTS.md`` and a bar chart to
``benchmarks/results.png`` (``--quick`` writes ``RESULTS-quick.md`` /
``results-quick.png`` instead, so a smoke test never overwrites real
numbers), and the raw results to ``ROOT/results.json``.

    python benchmarks/run.py --report-from ROOT/results.json [options]

re-renders the report and plot from a stored results file without
measuring anything.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402

SETS = {"imagenet": "jpeg", "fullsize": "jpeg", "png": "png"}
QUICK_LIMIT = {"imagenet": 64, "fullsize": 8, "png": 16}
DEFAULT_ROOT = Path(os.environ.get("SPDL_BENCH_ROOT", "~/.cache/spdl-bench")).expanduser()


# --------------------------------------------------------------------------
# Worker plumbing
# --------------------------------------------------------------------------
def _busy_jiffies() -> int | None:
    """CPU time (all cores, in clock ticks) spent by everything on the machine."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    vals = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal ...
    return sum(vals[:3]) + sum(vals[5:8])


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Runner:
    def __init__(self, args):
        self.args = args
        self.bench_python = args.python
        self.ref_python = args.ref_python
        self.log = open(args.log, "a") if args.log else None

    def python_for(self, method: str) -> str:
        return self.ref_python if peers.get_method(method).venv == "ref" else self.bench_python

    def env_for(self, python: str) -> dict:
        env = dict(os.environ)
        if python == self.ref_python:
            # Never let the reference SPDL see this repository's spdl.
            env.pop("PYTHONPATH", None)
        return env

    def call(self, python: str, argv: list[str], timeout: float) -> dict:
        cmd = [python, str(HERE / "_worker.py"), *argv]
        if self.log:
            self.log.write("$ " + shlex.join(cmd) + "\n")
            self.log.flush()
        j0, c0, t0 = _busy_jiffies(), _children_cpu_s(), time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=self.env_for(python), cwd=str(self.args.root))
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timeout after {timeout:.0f}s"}
        except OSError as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        j1, c1, t1 = _busy_jiffies(), _children_cpu_s(), time.monotonic()
        if self.log:
            self.log.write(proc.stdout + proc.stderr)
            self.log.flush()
        res = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
                break
        if res is None:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            res = {"ok": False, "error": f"worker exited {proc.returncode}: {tail[:300]}"}
        if j0 is not None and j1 is not None and t1 > t0:
            # Share of the machine's CPU used by *other* processes while the
            # worker ran (0 = quiet machine, 1 = every core busy elsewhere).
            hz = os.sysconf("SC_CLK_TCK")
            others = (j1 - j0) / hz - (c1 - c0)
            res["foreign_load"] = max(0.0, others / ((t1 - t0) * (os.cpu_count() or 1)))
        return res

    def wait_quiet(self) -> float:
        """Wait (at most --busy-wait s) for a 1 s window in which other processes
        use less than --max-foreign-load of the CPU.  Returns seconds waited."""
        limit, deadline = self.args.max_foreign_load, time.monotonic() + self.args.busy_wait
        start = time.monotonic()
        if limit <= 0:
            return 0.0
        hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        while time.monotonic() < deadline:
            j0, t0 = _busy_jiffies(), time.monotonic()
            if j0 is None:
                break
            time.sleep(1.0)
            load = (_busy_jiffies() - j0) / hz / ((time.monotonic() - t0) * ncpu)
            if load < limit:
                break
        return time.monotonic() - start

    def measure(self, python: str, argv: list[str], timeout: float) -> dict:
        """call() on a quiet machine if possible; re-run when other processes
        loaded the machine meanwhile (at most --busy-retries times)."""
        limit = self.args.max_foreign_load
        waited = self.wait_quiet()
        res = self.call(python, argv, timeout)
        tries = 1
        while (limit > 0 and res.get("ok") and res.get("foreign_load", 0) > limit
               and tries <= self.args.busy_retries):
            print(f"        machine busy (other processes used {res['foreign_load']:.0%} "
                  f"of the CPU); measuring again", flush=True)
            waited += self.wait_quiet()
            res = self.call(python, argv, timeout)
            tries += 1
        res["tries"] = tries
        res["waited_s"] = waited
        return res


def check_methods(runner: Runner, methods: list[str]) -> dict[str, dict]:
    out = {}
    for m in methods:
        py = runner.python_for(m)
        if not Path(py).exists():
            out[m] = {"ok": False, "error": f"python not found: {py}"}
            continue
        out[m] = runner.call(py, ["check", "--method", m], timeout=300)
    return out


def ensure_reference(runner: Runner, set_name: str, set_dir: Path, limit: int) -> Path | None:
    manifest = json.loads((set_dir / "manifest.json").read_text())
    n = len(manifest["images"]) if not limit else min(limit, len(manifest["images"]))
    ref_dir = runner.args.root / "refs"
    ref_dir.mkdir(parents=True, exist_ok=True)
    path = ref_dir / f"{set_name}-{manifest['recipe']}-{n}.npy"
    if path.exists():
        return path
    print(f"[run] computing accuracy reference for {set_name} ({n} images)", flush=True)
    res = runner.call(runner.bench_python,
                      ["run", "--method", "reference", "--set-dir", str(set_dir),
                       "--threads", str(max(runner.args.threads)), "--limit", str(n),
                       "--save", str(path)], timeout=3600)
    if not res.get("ok"):
        print(f"[run] reference failed: {res.get('error')}", flush=True)
        return None
    return path


# --------------------------------------------------------------------------
# Machine / version info
# --------------------------------------------------------------------------
def _sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine_info() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = platform.platform()
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    debs = _sh(["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                "libavcodec[0-9]*", "libavfilter[0-9]*", "libswscale[0-9]*",
                "libjpeg62-turbo", "libturbojpeg0", "libpng16-16"])
    ffmpeg = [" ".join(ln.split()[:3]) for ln in
              _sh(["ffmpeg", "-hide_banner", "-version"]).splitlines()[:1]]
    git = _sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory": mem,
        "os": f"{osname} (kernel {platform.release()}, {platform.machine()})",
        "python": platform.python_version(),
        "ffmpeg_cli": ffmpeg[0] if ffmpeg else "not installed",
        "debian_packages": [ln for ln in debs.splitlines() if ln.strip()],
        "git": git or "(no commit)",
    }


# --------------------------------------------------------------------------
# Statistics and report
# --------------------------------------------------------------------------
def _q(values: list[float], q: float) -> float:
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(results: list[dict]) -> dict:
    """results: rows with keys set, threads, method, ok, images_per_s, ..."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["set"], r["threads"], r["method"]), []).append(r)
    summary = {}
    for key, rows in groups.items():
        ok = [r for r in rows if r.get("ok")]
        s = {"reps": len(rows), "ok_reps": len(ok)}
        if ok:
            ips = [r["images_per_s"] for r in ok]
            s.update(median=statistics.median(ips), min=min(ips), max=max(ips),
                     q1=_q(ips, 0.25), q3=_q(ips, 0.75),
                     peak_rss_mb=statistics.median(r["peak_rss_mb"] for r in ok),
                     rss_delta_mb=statistics.median(r["rss_delta_mb"] for r in ok),
                     foreign_load=max(r.get("foreign_load", 0.0) for r in ok),
                     n=ok[0]["n"])
            cpu = [r["images_per_cpu_s"] for r in ok if r.get("images_per_cpu_s")]
            if cpu:
                s["cpu_ips"] = statistics.median(cpu)
            mads = [r["mad"] for r in ok if r.get("mad") is not None]
            if mads:
                s["mad"] = mads[0]
                s["worst_mad"] = ok[0].get("worst_mad")
            notes = {r["note"] for r in ok if r.get("note")}
            if notes:
                s["note"] = "; ".join(sorted(notes))
        errs = [r.get("error") for r in rows if not r.get("ok")]
        if errs:
            s["error"] = errs[0]
        summary[key] = s
    return summary


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def markdown_table(summary: dict, sets: list[str], threads: list[int],
                   methods: list[str], skipped: dict) -> str:
    lines = []
    for set_name in sets:
        for t in sorted(threads, reverse=True):
            rows = [(m, summary.get((set_name, t, m))) for m in methods]
            rows = [(m, s) for m, s in rows if s is not None]
            if not rows:
                continue
            n = next((s["n"] for _, s in rows if "n" in s), "?")
            lines.append(f"\n### {set_name} — {t} thread{'s' if t > 1 else ''} ({n} images)\n")
            lines.append("| method | images/s (median) | min – max | IQR | × ours | img per CPU-s "
                         "| MAD vs ref | peak RSS MB (Δ) | other load |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            ours = summary.get((set_name, t, "ours"), {}).get("median")
            ordered = sorted(rows, key=lambda ms: -ms[1].get("median", -1))
            for m, s in ordered:
                if "median" not in s:
                    lines.append(f"| {m} | failed: {s.get('error', '?')[:80]} | | | | | | | |")
                    continue
                ratio = f"{s['median'] / ours:.2f}" if ours else "n/a"
                mad = f"{s['mad']:.2f}" if "mad" in s else "–"
                name = f"**{m}**" if m.startswith("ours") else m
                lines.append(
                    f"| {name} | {_fmt(s['median'])} | {_fmt(s['min'])} – {_fmt(s['max'])} "
                    f"| {_fmt(s['q1'])} – {_fmt(s['q3'])} | {ratio} "
                    f"| {_fmt(s['cpu_ips']) if s.get('cpu_ips') else '–'} | {mad} "
                    f"| {s['peak_rss_mb']:.0f} ({s['rss_delta_mb']:+.0f}) "
                    f"| {s['foreign_load']:.0%} |")
    if skipped:
        lines.append("\nNot measured:\n")
        for m, why in skipped.items():
            lines.append(f"- `{m}`: {why}")
    return "\n".join(lines) + "\n"


def write_report(path: Path, args, argv: list[str], info: dict, versions: dict,
                 set_stats: dict, table: str, notes: dict, started: float,
                 plot_name: str | None, elapsed_s: float | None = None) -> None:
    def first_paragraph(doc: str | None) -> str:
        return " ".join((doc or "").strip().split("\n\n")[0].split())

    methods_doc = "\n".join(
        f"- `{m.name}` ({m.label}): {first_paragraph(m.fn.__doc__)}"
        for m in peers.METHODS.values() if m.name in args.methods)
    set_lines = "\n".join(
        f"| {k} | {v['count']} | {v['mean_width']:.0f}×{v['mean_height']:.0f} "
        f"| {v['mean_megapixels']:.2f} ({v['min_megapixels']:.2f}–{v['max_megapixels']:.2f}) "
        f"| {v['mean_bytes'] / 1024:.1f} |"
        for k, v in set_stats.items())
    pkgs = "\n".join(f"  - {ln}" for ln in info["debian_packages"])
    vers = json.dumps(versions, indent=1, sort_keys=True, default=str)
    note_lines = "\n".join(f"- `{m}`: {n}" for m, n in notes.items()) or "- none"
    banner = ("\n**QUICK SMOKE RUN (small subsets, 1 rep): numbers are not representative.**\n"
              if args.quick else "")
    text = f"""# spdl image-loading benchmark
{banner}
- Command: `{shlex.join(argv)}`
- Date: {_dt.datetime.fromtimestamp(started).astimezone().isoformat(timespec='seconds')} (took {(elapsed_s or time.time() - started) / 60:.1f} min)
- Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['memory']} RAM
- OS: {info['os']}; Python {info['python']}; repo {info['git']}
- FFmpeg CLI: {" ".join(str(info.get('ffmpeg_cli', '')).split()[:3])}
- Debian packages:
{pkgs}
- Reps: {args.reps} (interleaved; each in a fresh process), threads: {','.join(map(str, args.threads))}, batch size {args.batch_size}, min timed seconds per worker {args.min_seconds}

Task: decode each image from memory (files are read before timing), resize
with a bicubic filter keeping the aspect ratio to fit 224×224, pad centred
with black, RGB24, and return one `(N, 224, 224, 3)` uint8 batch per
{args.batch_size} images.  Peers use a `ThreadPoolExecutor(threads)` over the
images of a batch; OpenCV's own thread pool is disabled (`cv2.setNumThreads(1)`)
and PyAV's codec context uses 1 thread, so "threads" means the same for all.

Columns: images/s is the median over reps (higher is better); × ours is
median / median of `ours` at the same set and thread count; img per CPU-s is
images per second of CPU time used by the worker (all its threads; less
disturbed by other load on the machine, but blind to parallel speed-up); MAD is the mean
absolute difference (0..255 scale, all pixels and channels, padding included)
against a Pillow full-resolution decode with float32 bicubic resize; peak RSS
is the worker's `ru_maxrss` (it includes the interpreter, the method's
libraries and the encoded set held in memory) and Δ is its growth during the
timed batches; other load is the largest share of the machine's CPU that
other processes used while one of the reps ran (each run first waits up to
{args.busy_wait:.0f} s for a quiet second; runs above
{args.max_foreign_load:.0%} were repeated up to {args.busy_retries} times).

## Image sets

| set | images | mean size | megapixels mean (range) | mean KB |
|---|---:|---:|---:|---:|
{set_lines}

## Results
{table}
{f"![results]({plot_name})" if plot_name else ""}

## Methods

{methods_doc}

Method notes:
{note_lines}

## Library versions

```json
{vers}
```
"""
    path.write_text(text)


def plot(summary: dict, sets: list[str], threads: list[int], methods: list[str],
         path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[run] matplotlib not available; no plot", flush=True)
        return False
    ts = sorted(threads, reverse=True)
    fig, axes = plt.subplots(len(ts), len(sets),
                             figsize=(max(7.0, 4.6 * len(sets)), 0.42 * len(methods) * len(ts) + 1.6),
                             squeeze=False)
    for r, t in enumerate(ts):
        for c, set_name in enumerate(sets):
            ax = axes[r][c]
            rows = [(m, summary.get((set_name, t, m), {})) for m in methods]
            rows = [(m, s) for m, s in rows if "median" in s]
            if not rows:
                ax.set_axis_off()
                continue
            names = [m for m, _ in rows]
            med = [s["median"] for _, s in rows]
            lo = [s["median"] - s["min"] for _, s in rows]
            hi = [s["max"] - s["median"] for _, s in rows]
            colors = ["#d62728" if m.startswith("ours") else
                      ("#ff7f0e" if m.startswith("ref_spdl") else "#1f77b4") for m in names]
            y = range(len(names))
            ax.barh(list(y), med, xerr=[lo, hi], color=colors, capsize=3)
            ax.set_yticks(list(y))
            ax.set_yticklabels(names, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{set_name}, {t} thread{'s' if t > 1 else ''}", fontsize=10)
            ax.set_xlabel("images/s (median; bars: min–max over reps)", fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Decode + resize to 224×224 (pad), batches of 256: images/s, higher is better\n"
                 "red: spdl (ours), orange: spdl-io 0.8.0 (PyPI), blue: other libraries",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                    help="data cache made by data.py (default: %(default)s)")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--methods", default=",".join(peers.METHODS),
                    help="comma separated; default: all (%(default)s)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--min-seconds", type=float, default=2.0,
                    help="each worker repeats whole passes over the set until this "
                         "much time has been timed (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images of each set")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: small subsets, 1 rep, single pass")
    ap.add_argument("--python", default=sys.executable,
                    help="python of the benchmark venv (peers and ours)")
    ap.add_argument("--ref-python", default=None,
                    help="python of the reference spdl-io venv (default: ROOT/venv-spdl-ref/bin/python)")
    ap.add_argument("--timeout", type=float, default=1800, help="per worker, seconds")
    ap.add_argument("--max-foreign-load", type=float, default=0.15,
                    help="re-run a measurement when other processes used more than this "
                         "share of the machine's CPU meanwhile (0 disables; default %(default)s)")
    ap.add_argument("--busy-retries", type=int, default=2)
    ap.add_argument("--busy-wait", type=float, default=30.0,
                    help="before each run, wait at most this long for the machine to be "
                         "quiet (default %(default)s s)")
    ap.add_argument("--out", type=Path, default=None, help="markdown report path")
    ap.add_argument("--plot", type=Path, default=None, help="plot path")
    ap.add_argument("--json", type=Path, default=None, help="raw results (JSON) path")
    ap.add_argument("--log", default="", help="append worker commands and output here")
    args = ap.parse_args(argv)
    args.root = args.root.expanduser().resolve()
    args.sets = [s for s in args.sets.split(",") if s]
    args.methods = [m for m in args.methods.split(",") if m]
    args.threads = sorted({int(t) for t in args.threads.split(",") if t})
    for s in args.sets:
        if s not in SETS:
            ap.error(f"unknown set {s!r}; choose from {list(SETS)}")
    for m in args.methods:
        if m not in peers.METHODS:
            ap.error(f"unknown method {m!r}; choose from {list(peers.METHODS)}")
    if args.quick:
        args.reps = 1
        args.min_seconds = 0.0
        args.busy_retries = 0  # a smoke test need not wait for a quiet machine
        args.busy_wait = min(args.busy_wait, 2.0)
    suffix = "-quick" if args.quick else ""
    args.out = args.out or HERE / f"RESULTS{suffix}.md"
    args.plot = args.plot or HERE / f"results{suffix}.png"
    args.json = args.json or args.root / f"results{suffix}.json"
    args.ref_python = args.ref_python or str(args.root / "venv-spdl-ref" / "bin" / "python")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--report-from"] and len(argv) >= 2:
        return report_only(Path(argv[1]), argv[2:])
    args = parse_args(argv)
    started = time.time()
    runner = Runner(args)

    # Data sets must exist (benchmarks/data.py builds them).
    set_dirs, set_stats, limits = {}, {}, {}
    for s in args.sets:
        d = args.root / s
        if not (d / "manifest.json").exists():
            print(f"[run] missing data set {d}; run: python benchmarks/data.py --root {args.root}",
                  file=sys.stderr)
            return 2
        set_dirs[s] = d
        man = json.loads((d / "manifest.json").read_text())
        limits[s] = QUICK_LIMIT[s] if args.quick else args.limit
        stats = dict(man["summary"])
        if limits[s]:
            import data as _data  # the summariser lives with the data step

            stats = _data.summarize(s, man["images"][: limits[s]])
        set_stats[s] = stats

    # Which methods can run here?
    print("[run] checking methods ...", flush=True)
    checks = check_methods(runner, args.methods)
    skipped = {m: c.get("error", "?") for m, c in checks.items() if not c.get("ok")}
    notes = {m: c["note"] for m, c in checks.items() if c.get("ok") and c.get("note")}
    methods = [m for m in args.methods if m not in skipped]
    for m, why in skipped.items():
        print(f"[run] skipping {m}: {why}", flush=True)

    refs = {s: ensure_reference(runner, s, set_dirs[s], limits[s]) for s in args.sets}

    # Work list, interleaved by repetition.
    combos = []
    for s in args.sets:
        for t in args.threads:
            for m in methods:
                meth = peers.get_method(m)
                if SETS[s] not in meth.formats:
                    continue
                if not meth.threaded and t != min(args.threads):
                    continue
                combos.append((s, t, m))
    total = len(combos) * args.reps
    print(f"[run] {len(combos)} combinations x {args.reps} reps = {total} worker runs", flush=True)
    results, k = [], 0
    partial = args.json.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(1, args.reps + 1):
        for s, t, m in combos:
            k += 1
            argv_w = ["run", "--method", m, "--set-dir", str(set_dirs[s]), "--threads", str(t),
                      "--batch-size", str(args.batch_size), "--min-seconds", str(args.min_seconds)]
            if limits[s]:
                argv_w += ["--limit", str(limits[s])]
            if rep == 1 and refs[s] is not None:
                argv_w += ["--accuracy", str(refs[s])]
            res = runner.measure(runner.python_for(m), argv_w, timeout=args.timeout)
            res.update(set=s, threads=t, method=m, rep=rep)
            results.append(res)
            # Keep what has been measured so far (render it with --report-from
            # if the run is interrupted).
            partial.write_text(json.dumps(
                {"argv": argv, "started": started, "elapsed_s": time.time() - started,
                 "machine": {}, "versions": {}, "sets": set_stats, "methods": methods,
                 "skipped": skipped, "notes": notes, "results": results, "partial": True}))
            if res.get("ok"):
                mad = f" mad={res['mad']:.2f}" if "mad" in res else ""
                print(f"[{k:3d}/{total}] rep {rep} {s:8s} t={t} {m:15s} "
                      f"{res['images_per_s']:9.1f} img/s  rss={res['peak_rss_mb']:.0f}MB{mad}"
                      f"  other-load={res.get('foreign_load', 0):.0%}", flush=True)
            else:
                print(f"[{k:3d}/{total}] rep {rep} {s:8s} t={t} {m:15s} FAILED: {res.get('error')}",
                      flush=True)

    info = machine_info()
    versions = {"bench": runner.call(args.python, ["versions"], timeout=300)}
    if Path(args.ref_python).exists():
        versions["reference"] = runner.call(args.ref_python, ["versions", "--only", "spdl"],
                                            timeout=300)
    for v in versions.values():
        v.pop("foreign_load", None)
    stored = {"argv": argv, "started": started, "elapsed_s": time.time() - started,
              "machine": info, "versions": versions, "sets": set_stats,
              "methods": methods, "skipped": skipped, "notes": notes, "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stored, indent=1))
    partial.unlink(missing_ok=True)
    finish(args, stored)
    return 0


def finish(args, stored: dict) -> None:
    """Summary table (stdout), plot and markdown report from stored results."""
    results, methods = stored["results"], stored["methods"]
    notes = dict(stored.get("notes", {}))
    summary = summarize(results)
    # Notes that only the runs know (e.g. how ours took the thread count).
    for (s, t, m), sm in summary.items():
        if sm.get("note") and sm["note"] != notes.get(m):
            notes[f"{m} (threads={t})"] = sm["note"]
    table = markdown_table(summary, args.sets, args.threads, methods, stored.get("skipped", {}))
    print(table)
    plotted = plot(summary, args.sets, args.threads, methods, args.plot)
    plot_name = None
    if plotted:
        try:
            plot_name = os.path.relpath(args.plot, args.out.parent)
        except ValueError:
            plot_name = str(args.plot)
    write_report(args.out, args, ["python", "benchmarks/run.py", *stored["argv"]],
                 stored["machine"], stored["versions"], stored["sets"], table, notes,
                 stored["started"], plot_name, stored.get("elapsed_s"))
    print(f"[run] wrote {args.out}" + (f" and {args.plot}" if plotted else "")
          + f"; raw results in {args.json}", flush=True)


def report_only(path: Path, overrides: list[str]) -> int:
    stored = json.loads(Path(path).read_text())
    # Older result files lack some fields.
    stored.setdefault("started", Path(path).stat().st_mtime - stored.get("elapsed_s", 0))
    stored.setdefault("methods", list(dict.fromkeys(r["method"] for r in stored["results"])))
    if not stored.get("machine"):
        stored["machine"] = machine_info()
    args = parse_args([*stored["argv"], *overrides])
    finish(args, stored)
    return 0


if __name__ == "__main__":
    sys.exit(main())
