"""One measurement in a fresh process (started by run.py).

    python benchmarks/_worker.py run --method M --set-dir DIR --threads T
                                 [--limit N] [--batch-size 256]
                                 [--accuracy REF.npy] [--save OUT.npy]
    python benchmarks/_worker.py check --method M
    python benchmarks/_worker.py versions

Prints one line ``RESULT {json}`` on stdout.

``run``: reads the set's files into memory (untimed), warms the method up
once on a few images, then times one full pass over the set in batches of
``--batch-size`` images (repeated, whole passes only, until
``--min-seconds`` have passed, to tame timer and scheduler noise on short
sets) and reports images/s.  Peak RSS is ``ru_maxrss`` of
this process right after the timed pass (the encoded set is in memory too;
``rss_delta_mb`` is the growth over the RSS measured after warm-up).  With
``--accuracy`` the set is then decoded once more (untimed) and compared with
the reference batch (mean absolute difference over all pixels/channels).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402


def _emit(obj: dict) -> None:
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _current_rss_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def load_set(set_dir: Path, limit: int | None) -> tuple[list[str], list[bytes]]:
    manifest = json.loads((set_dir / "manifest.json").read_text())
    names = [e["file"] for e in manifest["images"]]
    if limit:
        names = names[:limit]
    return names, [(set_dir / n).read_bytes() for n in names]


def _batches(datas, size):
    for i in range(0, len(datas), size):
        yield datas[i:i + size]


def cmd_run(args) -> dict:
    method = peers.get_method(args.method)
    names, datas = load_set(Path(args.set_dir), args.limit)
    n = len(datas)
    res = {"method": args.method, "set_dir": args.set_dir, "threads": args.threads,
           "n": n, "batch_size": args.batch_size, "pid": os.getpid()}

    # Warm-up: imports, library init, thread pool start.
    warm = datas[: min(n, max(8, 4 * args.threads))]
    out = method.fn(warm, args.threads)
    assert out.shape == (len(warm), peers.HEIGHT, peers.WIDTH, 3), out.shape
    assert out.dtype == np.uint8, out.dtype
    del out
    if args.method.startswith("ours"):
        res["note"] = peers.ours_note(args.method, args.threads)
    gc.collect()
    rss_before = _current_rss_kb()

    saved = [] if args.save else None
    passes = 0
    c0 = time.process_time()  # CPU time of all threads of this process
    t0 = time.perf_counter()
    while True:
        for chunk in _batches(datas, args.batch_size):
            out = method.fn(chunk, args.threads)
            if saved is not None:
                saved.append(out)
            del out
        passes += 1
        if passes == 1:
            saved_first, saved = saved, None
        elapsed = time.perf_counter() - t0
        if elapsed >= args.min_seconds:
            break
    cpu = time.process_time() - c0
    peak = _peak_rss_kb()
    res.update({
        "seconds": elapsed,
        "cpu_seconds": cpu,
        # Less sensitive to other processes on the machine than images/s;
        # it does not show parallel speed-up.
        "images_per_cpu_s": passes * n / cpu if cpu > 0 else None,
        "passes": passes,
        "images_per_s": passes * n / elapsed,
        "peak_rss_mb": peak / 1024,
        "rss_after_warmup_mb": rss_before / 1024,
        "rss_delta_mb": max(0, peak - rss_before) / 1024,
        "encoded_mb": sum(map(len, datas)) / 1e6,
    })

    if args.save:
        np.save(args.save, np.concatenate(saved_first))
        res["saved"] = args.save
        del saved_first

    if args.accuracy:
        ref = np.load(args.accuracy, mmap_mode="r")
        if ref.shape[0] < n:
            raise RuntimeError(f"reference has {ref.shape[0]} images, need {n}")
        total, pos, worst = 0.0, 0, (0.0, "")
        for chunk in _batches(datas, args.batch_size):
            out = method.fn(chunk, args.threads)
            r = np.asarray(ref[pos:pos + len(chunk)])
            diff = np.abs(out.astype(np.int16) - r.astype(np.int16))
            total += float(diff.sum(dtype=np.int64))
            per_img = diff.reshape(len(chunk), -1).mean(axis=1)
            k = int(per_img.argmax())
            if per_img[k] > worst[0]:
                worst = (float(per_img[k]), names[pos + k])
            pos += len(chunk)
        res["mad"] = total / (n * peers.HEIGHT * peers.WIDTH * 3)
        res["worst_mad"], res["worst_image"] = worst
    return res


def cmd_check(args) -> dict:
    method = peers.get_method(args.method)
    res = {"method": args.method, "ok": True}
    try:
        for mod in method.modules:
            importlib.import_module(mod)
        # Smoke call on a tiny synthetic JPEG/PNG is left to the run itself;
        # but make sure the entry points the method uses exist.
        if args.method in ("ours", "ours_async"):
            import spdl.io

            attr = "load_image_batch" if args.method == "ours" else "async_load_image_batch"
            getattr(spdl.io, attr)
            getattr(spdl.io, "to_numpy")
            res["note"] = peers.ours_note(args.method, 2)
        elif method.venv == "ref":
            import spdl.io

            for attr in ("demux_image", "decode_packets", "convert_frames", "to_numpy",
                         "get_video_filter_desc", "load_image_batch"):
                getattr(spdl.io, attr)
    except Exception as e:  # noqa: BLE001
        res.update(ok=False, error=f"{type(e).__name__}: {e}")
    return res


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def cmd_versions(args) -> dict:
    v: dict = {"python": platform.python_version(), "executable": sys.executable,
               "numpy": np.__version__}

    def guard(key, fn):
        try:
            v[key] = fn()
        except Exception as e:  # noqa: BLE001
            v[key] = f"unavailable ({type(e).__name__}: {str(e)[:120]})"

    def _pil():
        import PIL
        from PIL import features

        return {"version": PIL.__version__,
                "libjpeg_turbo": features.version("libjpeg_turbo"),
                "zlib": features.version("zlib")}

    def _cv2():
        import cv2

        jpeg = [ln.strip() for ln in cv2.getBuildInformation().splitlines()
                if ln.strip().startswith(("JPEG:", "PNG:"))]
        return {"version": cv2.__version__, "codecs": jpeg}

    def _simplejpeg():
        import simplejpeg

        return {"version": simplejpeg.__version__}

    def _turbo():
        import turbojpeg

        turbojpeg.TurboJPEG()  # loads libturbojpeg
        return {"version": _dist_version("PyTurboJPEG"),
                "lib": _loaded_libs("turbojpeg")}

    def _av():
        import av

        libs = {k: ".".join(map(str, val)) for k, val in av.library_versions.items()}
        return {"version": av.__version__,
                "ffmpeg": getattr(av, "ffmpeg_version_info", None), "libs": libs}

    def _spdl():
        import spdl.io

        out = {"module": getattr(spdl.io, "__file__", None)}
        for dist in ("spdl", "spdl-io"):
            if _dist_version(dist):
                out["dist"] = f"{dist} {_dist_version(dist)}"
        import spdl

        out["version"] = getattr(spdl, "__version__", None) or getattr(spdl.io, "__version__", None)
        for path in ("spdl.io.utils", "spdl.io"):
            try:
                m = importlib.import_module(path)
                if hasattr(m, "get_ffmpeg_versions"):
                    out["ffmpeg"] = {k: ".".join(map(str, val)) if isinstance(val, tuple) else val
                                     for k, val in dict(m.get_ffmpeg_versions()).items()}
                    break
            except Exception:  # noqa: BLE001
                pass
        # Which FFmpeg / libjpeg builds the extension actually loaded (spdl is
        # checked first, so other libraries' copies are not mapped yet).
        out["loaded_libs"] = _loaded_libs("libavcodec", "libavfilter", "libswscale",
                                          "libjpeg", "libturbojpeg", "libpng")
        return out

    def _loaded_libs(*needles: str) -> list[str]:
        """Shared libraries mapped into this process whose names match."""
        found = set()
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    path = line.split()[-1] if len(line.split()) >= 6 else ""
                    name = os.path.basename(path)
                    if any(nd in name for nd in needles):
                        found.add(os.path.realpath(path))
        except OSError:
            pass
        return sorted(found)

    which = args.only.split(",") if args.only else ["pillow", "opencv", "simplejpeg",
                                                    "pyturbojpeg", "av", "spdl"]
    table = {"pillow": _pil, "opencv": _cv2, "simplejpeg": _simplejpeg,
             "pyturbojpeg": _turbo, "av": _av, "spdl": _spdl}
    for k in sorted(which, key=lambda k: k != "spdl"):  # spdl first
        guard(k, table[k])
    return v


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--method", required=True)
    r.add_argument("--set-dir", required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--accuracy", default="")
    r.add_argument("--save", default="")
    r.add_argument("--min-seconds", type=float, default=0.0,
                   help="repeat full passes until this much time has passed")
    c = sub.add_parser("check")
    c.add_argument("--method", required=True)
    v = sub.add_parser("versions")
    v.add_argument("--only", default="")
    args = ap.parse_args()
    try:
        res = {"run": cmd_run, "check": cmd_check, "versions": cmd_versions}[args.cmd](args)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        _emit({"ok": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    res.setdefault("ok", True)
    _emit(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
