"""spdl-ingest: decode a folder, tar shards or Parquet files into shards of fixed-size arrays.

    spdl-ingest SRC... OUT --width W --height H [options]
    python -m spdl.ingest SRC... OUT --width W --height H [options]

SRC is a folder of images (recursive), tar shards in WebDataset layout (files or a
quoted glob), or Parquet files with an encoded-image column, read with
``spdl.io.iter_image_batches(..., strict=False)`` in a deterministic (sorted,
unshuffled) order. OUT receives:

    shard-00000.npz ...    --format npy: arrays images (N, H, W, C) uint8, keys, labels
    shard-00000.tar ...    --format webdataset: <index>.npy, .cls (or .txt), .json per image
    shard-00000.parquet    --format parquet: columns key, label, image (fixed-size binary)
    progress.json          the finished shards and their item ranges (for resume)
    failures.jsonl         one line per input that failed: key, stage, error, reason
    contact_sheet.png      a sample of the rows this run decoded
    summary.json           counts, seconds, images/s, arguments

Shard k holds the images that loaded among inputs [k * shard_size, (k + 1) *
shard_size) of the listing. Each shard is written to a temporary name and
renamed when whole; progress.json is then updated. Running the same command
again skips the finished shards (the arguments that shape the output must be
the same). Exit status: 0 when the run completed (bad images included), 1 when
the run itself failed (source missing, OUT unwritable, a write failed), 2 for
bad arguments, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spdl.io._shards import SHARD_FILES
from spdl.io._sheet import ContactSheet

__all__ = ["main", "run", "build_parser", "IngestError"]

PROG = "spdl-ingest"
MANIFEST = "progress.json"
FAILURES = "failures.jsonl"
SUMMARY = "summary.json"
SHEET = "contact_sheet.png"
MANIFEST_VERSION = 1
#: Channels of each accepted pix_fmt (packed uint8 formats only: rows are images).
PIX_FMTS = {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1}
FORMATS = {name: cls.suffix for name, cls in SHARD_FILES.items()}
#: The arguments that shape the output: a resumed run must give the same ones.
OUTPUT_ARGS = ("sources", "width", "height", "crop", "scale_mode", "pix_fmt", "format",
               "shard_size", "labels", "column", "label_column")


class IngestError(Exception):
    """The run itself failed; ``code`` is the exit status (1: the run, 2: the arguments)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------
# Arguments


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _crop(text: str) -> str | None:
    """``none``, ``center`` or ``center:F`` (0 < F <= 1), canonical as ``center:F``."""
    if text == "none":
        return None
    kind, _, frac = text.partition(":")
    if kind != "center":
        raise argparse.ArgumentTypeError(f"expected none, center or center:FRACTION, got {text!r}")
    try:
        value = float(frac) if frac else 0.875
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {frac!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"the centre-crop fraction must be in (0, 1], got {value}")
    return f"center:{value!r}"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Decode a folder, tar shards or Parquet files into shards of fixed-size "
                    "uint8 image arrays with keys and labels.",
        epilog="Exit status: 0 the run completed (failed images are listed in failures.jsonl); "
               "1 the run failed; 2 bad arguments; 130 interrupted (run again to resume).")
    ap.add_argument("src", nargs="+", metavar="SRC",
                    help="a folder, tar shard(s) or Parquet file(s); a quoted glob is expanded")
    ap.add_argument("out", metavar="OUT", help="output folder (created; resumed if it holds a run)")
    ap.add_argument("--width", type=_positive, required=True, help="width of every image")
    ap.add_argument("--height", type=_positive, required=True, help="height of every image")
    ap.add_argument("--crop", type=_crop, default=None, metavar="none|center[:F]",
                    help="centre crop of fraction F (default 0.875) of the largest box of the "
                         "output's aspect, stretched to the size (default: none)")
    ap.add_argument("--scale-mode", choices=("pad", "crop", "stretch"), default="pad",
                    help="how an image fits the size without --crop (default: pad)")
    ap.add_argument("--pix-fmt", choices=tuple(PIX_FMTS), default="rgb24",
                    help="pixel format of the rows (default: rgb24)")
    ap.add_argument("--format", choices=tuple(FORMATS), default="npy",
                    help="shard format (default: npy, one .npz per shard)")
    ap.add_argument("--shard-size", type=_positive, default=1000,
                    help="inputs per shard (default: 1000)")
    ap.add_argument("--labels", choices=("folder",), default=None,
                    help="folder: class index of each image's first-level subfolder")
    ap.add_argument("--column", default=None,
                    help="Parquet: the column holding the encoded images (default: image)")
    ap.add_argument("--label-column", default=None,
                    help="Parquet: the column of labels (default: label, when present)")
    ap.add_argument("--threads", type=_positive, default=None,
                    help="decoding threads (default: the CPUs this process may use)")
    ap.add_argument("--batch-size", type=_positive, default=64,
                    help="images decoded per batch (default: 64)")
    ap.add_argument("--max-shards", type=_positive, default=None,
                    help="stop after writing this many shards (a later run resumes)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or final line")
    return ap


@dataclass(frozen=True)
class Options:
    sources: tuple[str, ...]
    out: Path
    width: int
    height: int
    crop: str | None
    scale_mode: str
    pix_fmt: str
    format: str
    shard_size: int
    labels: str | None
    column: str | None
    label_column: str | None
    threads: int | None
    batch_size: int
    max_shards: int | None
    quiet: bool

    @property
    def channels(self) -> int:
        return PIX_FMTS[self.pix_fmt]

    @property
    def suffix(self) -> str:
        return FORMATS[self.format]

    def output_args(self) -> dict[str, Any]:
        """The arguments a resumed run must repeat, as JSON values."""
        d = {k: getattr(self, k) for k in OUTPUT_ARGS}
        d["sources"] = list(self.sources)
        return d

    def all_args(self) -> dict[str, Any]:
        d = self.output_args()
        d.update(out=str(self.out), threads=self.threads, batch_size=self.batch_size,
                 max_shards=self.max_shards, quiet=self.quiet)
        return d


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def parse_options(argv: Sequence[str] | None) -> Options:
    """The command line as Options; argparse exits with status 2 on a bad argument."""
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.format == "parquet" and not _has("pyarrow"):
        ap.error("--format parquet needs pyarrow: pip install 'pixelbatch[parquet]'")
    # Sources are kept as absolute paths (a glob as an absolute pattern), so a resumed
    # run from another directory is the same run.
    sources = tuple(os.path.abspath(s) for s in a.src)
    return Options(sources=sources, out=Path(os.path.abspath(a.out)), width=a.width,
                   height=a.height, crop=a.crop, scale_mode=a.scale_mode, pix_fmt=a.pix_fmt,
                   format=a.format, shard_size=a.shard_size, labels=a.labels, column=a.column,
                   label_column=a.label_column,
                   threads=a.threads, batch_size=a.batch_size, max_shards=a.max_shards,
                   quiet=a.quiet)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------------------
# The listing


def _check_sources(opts: Options) -> None:
    for s in opts.sources:
        if _is_glob(s):
            if not glob.glob(s):
                raise IngestError(f"source missing: no file matches {s}")
        elif not os.path.exists(s):
            raise IngestError(f"source missing: {s}")


def _source_arg(opts: Options) -> str | list[str]:
    return opts.sources[0] if len(opts.sources) == 1 else list(opts.sources)


def _open_batches(opts: Options) -> Any:
    """The dataset iterator over SRC (listed here, once), unshuffled, failures kept.

    Its ``span`` (start, stop) limits a pass to that range of the listing, so a resumed
    run decodes only the inputs of unfinished shards.
    """
    import spdl.io
    from spdl.io import _dataset
    from spdl.io._plan import compile_plan

    class _Range(_dataset.ImageBatches):
        span: tuple[int, int] | None = None

        @property
        def items(self) -> list[Any]:
            items = super().items
            return items if self.span is None else items[self.span[0]:self.span[1]]

    crop = None if opts.crop is None else spdl.io.CenterCrop(float(opts.crop.partition(":")[2]))
    plan = compile_plan(width=opts.width, height=opts.height, pix_fmt=opts.pix_fmt,
                        scale_mode=opts.scale_mode, crop=crop, strict=False,
                        num_threads=opts.threads)
    try:
        return _Range(_source_arg(opts), batch_size=opts.batch_size, plan=plan,
                      labels=opts.labels, column=opts.column, label_column=opts.label_column,
                      shuffle=False, drop_last=False)
    except FileNotFoundError as e:
        raise IngestError(f"source missing: {e}") from None
    except ImportError as e:
        raise IngestError(str(e)) from None
    except (TypeError, ValueError) as e:
        raise IngestError(f"SRC cannot be read as a dataset: {e}", code=2) from None
    except OSError as e:
        raise IngestError(f"cannot list SRC: {e}") from None


def _listing_digest(items: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(str(it.key).encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def _label_kind(items: Sequence[Any]) -> str:
    """``none`` (no input has a label), ``int`` or ``str``."""
    kinds = {type(it.label) for it in items if it.label is not None}
    if not kinds:
        return "none"
    if all(issubclass(k, (int, np.integer)) for k in kinds):
        return "int"
    return "str"


# ---------------------------------------------------------------------------------------
# Small files: JSON written atomically, the failure report, the contact sheet.


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_json(path: Path, obj: object) -> None:
    _write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def failure_record(key: str, index: int, shard: int, exc: BaseException) -> dict[str, Any]:
    """One failures.jsonl line: the input, the stage that failed and why."""
    return {"key": key, "index": index, "shard": shard,
            "stage": getattr(exc, "stage", None) or "load",
            "error": type(exc).__name__, "reason": str(exc)}


# ---------------------------------------------------------------------------------------
# Progress: tqdm when installed, else one line on stderr.


class _Progress:
    def __init__(self, total: int, done: int, quiet: bool) -> None:
        self.total, self.done, self.failed = total, done, 0
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.start_done = done
        self.bar: Any = None
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        if quiet:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=done, unit="img", desc=PROG, smoothing=0.1,
                        dynamic_ncols=True)

    def update(self, items: int, failed: int) -> None:
        self.done += items
        self.failed += failed
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(items)
            if failed:
                self.bar.set_postfix(failed=self.failed, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= (0.25 if self.tty else 10.0) or self.done == self.total:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        dt = max(now - self.t0, 1e-9)
        rate = (self.done - self.start_done) / dt
        pct = 100.0 * self.done / max(self.total, 1)
        text = (f"{PROG}: {self.done}/{self.total} ({pct:.0f}%) {rate:.0f} img/s, "
                f"{self.failed} failed")
        sys.stderr.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.tty:
            self._line(time.perf_counter())
            sys.stderr.write("\n")


# ---------------------------------------------------------------------------------------
# The run


@dataclass
class _State:
    """What progress.json holds."""

    arguments: dict[str, Any]
    items: int
    digest: str
    shards: list[dict[str, Any]]
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "tool": PROG, "arguments": self.arguments,
                "items": self.items, "listing_sha256": self.digest,
                "complete": self.complete, "shards": self.shards}


def _prepare_out(opts: Options) -> dict[str, Any] | None:
    """Create OUT; the manifest of the run it holds, or None for a new run."""
    out = opts.out
    if out.exists() and not out.is_dir():
        raise IngestError(f"OUT is not a folder: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".{PROG}-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise IngestError(f"cannot write to OUT {out}: {e.strerror or e}") from None
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            return json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise IngestError(f"{manifest} cannot be read ({e}); remove OUT to start over") from None
    others = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    if others:
        raise IngestError(f"OUT {out} is not empty and holds no {PROG} run ({others[0]} ...); "
                          "choose an empty or new folder")
    return None


def _check_resume(opts: Options, old: dict[str, Any], items: int, digest: str) -> None:
    if old.get("version") != MANIFEST_VERSION or old.get("tool") != PROG:
        raise IngestError(f"{opts.out / MANIFEST} is not a {PROG} manifest this version reads",
                          code=2)
    want = opts.output_args()
    have = old.get("arguments", {})
    diff = [k for k in OUTPUT_ARGS if have.get(k) != want[k]]
    if diff:
        lines = ", ".join(f"{k}: {have.get(k)!r} before, {want[k]!r} now" for k in diff)
        raise IngestError(f"OUT {opts.out} holds a run made with other arguments ({lines}); "
                          "repeat them to resume, or choose a new OUT", code=2)
    if old.get("items") != items or old.get("listing_sha256") != digest:
        raise IngestError(f"SRC has changed since the run in {opts.out} started "
                          f"({items} inputs now, {old.get('items')} then, or other names); "
                          "choose a new OUT")


def _finished_prefix(opts: Options, old: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The manifest's shards whose files are present, up to the first missing one."""
    done: list[dict[str, Any]] = []
    if old is None:
        return done
    for k, s in enumerate(old.get("shards", [])):
        if s.get("index") != k or not (opts.out / s["name"]).is_file():
            break
        done.append(s)
    return done


def _clean_tmp(out: Path) -> None:
    for p in out.glob(".*.tmp-*"):   # what a killed run was writing
        try:
            p.unlink()
        except OSError:
            pass


def _keep_failures(out: Path, shards: int) -> None:
    """Drop the failure lines of shards that were not finished (a resumed run redoes them)."""
    path = out / FAILURES
    if not path.exists():
        path.touch()
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("shard", shards) < shards:
                kept.append(line + "\n")
        except ValueError:
            continue
    _write_atomic(path, "".join(kept).encode())


def run(opts: Options) -> dict[str, Any]:
    """Ingest SRC into OUT as ``opts`` says; the summary (also written to summary.json)."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _check_sources(opts)
    old = _prepare_out(opts)
    batches = _open_batches(opts)
    with batches:
        return _run(opts, batches, old, t0, started)


def _run(opts: Options, batches: Any, old: dict[str, Any] | None, t0: float,
         started: str) -> dict[str, Any]:
    items = batches.items
    if not items:
        raise IngestError(f"no images found in {' '.join(opts.sources)}")
    n = len(items)
    digest = _listing_digest(items)
    if old is not None:
        _check_resume(opts, old, n, digest)
    finished = _finished_prefix(opts, old)
    state = _State(opts.output_args(), n, digest, list(finished))
    _clean_tmp(opts.out)
    _keep_failures(opts.out, len(finished))
    state.complete = bool(finished) and finished[-1]["items"][1] == n
    _write_json(opts.out / MANIFEST, state.to_json())

    if state.complete and (opts.out / SUMMARY).exists():
        if not opts.quiet:
            print(f"{PROG}: {opts.out} already holds the whole run; nothing to do", file=sys.stderr)
        return dict(json.loads((opts.out / SUMMARY).read_text()), nothing_to_do=True)

    label_kind = _label_kind(items)
    size = opts.shard_size
    start = len(finished) * size
    n_shards = math.ceil(n / size)
    if opts.max_shards is not None:
        n_shards = min(n_shards, len(finished) + opts.max_shards)
    stop = min(n_shards * size, n)
    progress = _Progress(n, start, opts.quiet)
    sheet = ContactSheet(start, stop, (opts.height, opts.width, opts.channels), opts.pix_fmt)
    shards = _Assembler(opts, items, state, label_kind, start, stop, sheet, progress)
    try:
        if start < stop:
            batches.span = (start, stop)
            for buf in batches:
                shards.add(buf)
        shards.finish()
    finally:
        shards.abort()
        progress.close()

    seconds = time.perf_counter() - t0
    rate = round((stop - start) / seconds, 1) if seconds > 0 else None
    summary = {
        "tool": PROG, "started": started, "complete": state.complete,
        "items": n, "images_ok": sum(s["ok"] for s in state.shards),
        "images_failed": sum(s["failed"] for s in state.shards),
        "shards": [s["name"] for s in state.shards],
        "seconds": round(seconds, 3), "images_per_s": rate,
        "this_run": {"items": stop - start, "images_ok": shards.ok, "images_failed": shards.failed,
                     "shards_written": len(state.shards) - len(finished),
                     "shards_resumed": len(finished)},
        "shape": [opts.height, opts.width, opts.channels], "label_kind": label_kind,
        "contact_sheet": {"file": SHEET, "keys": sheet.keys} if sheet.keys else None,
        "arguments": opts.all_args(),
        "versions": _versions(),
    }
    png = sheet.png()
    if png is not None:
        _write_atomic(opts.out / SHEET, png)
    _write_json(opts.out / SUMMARY, summary)
    return summary


class _Open:
    """The shard being written: its file under a temporary name, its failures."""

    def __init__(self, opts: Options, k: int, lo: int, hi: int, label_kind: str) -> None:
        self.index, self.start, self.stop = k, lo, hi
        self.name = f"shard-{k:05d}{opts.suffix}"
        self.final = opts.out / self.name
        self.tmp = opts.out / f".{self.name}.tmp-{os.getpid()}"
        self.failures: list[dict[str, Any]] = []
        self.f = open(self.tmp, "wb")
        self.file = SHARD_FILES[opts.format](
            self.f, (opts.height, opts.width, opts.channels), hi - lo, label_kind)


class _Assembler:
    """Routes each batch's rows to the shard of their input (by position in the listing),
    streams them into its file, and finishes each shard once its last input is accounted
    for: the file renamed into place, its failures appended, progress.json updated."""

    def __init__(self, opts: Options, items: Sequence[Any], state: _State, label_kind: str,
                 start: int, stop: int, sheet: ContactSheet, progress: _Progress) -> None:
        self.opts, self.items, self.state, self.label_kind = opts, items, state, label_kind
        self.pos, self.start, self.stop = start, start, stop
        self.sheet, self.progress = sheet, progress
        self.ok = self.failed = 0
        self.shard: _Open | None = None

    def _open(self, j: int) -> _Open:
        k = j // self.opts.shard_size
        lo = k * self.opts.shard_size
        hi = min(lo + self.opts.shard_size, len(self.items))
        try:
            return _Open(self.opts, k, lo, hi, self.label_kind)
        except OSError as e:
            raise IngestError(f"cannot write a shard in {self.opts.out}: {e}") from None

    def add(self, buf: Any) -> None:
        keys, errors = buf.keys or (), buf.errors
        labels = buf.labels
        rows = _to_numpy(buf) if keys else None
        nb = len(keys) + len(errors)
        r = failed = 0
        run: list[int] = []        # listing indices of the rows r0.. going to this shard
        r0 = 0
        for j in range(self.pos, self.pos + nb):
            if self.shard is None or j >= self.shard.stop:
                self._write(rows, r0, run, keys, labels)
                r0, run = r, []
                if self.shard is not None:
                    self._finish_shard()
                self.shard = self._open(j)
            item = self.items[j]
            if r < len(keys) and keys[r] == item.key:
                assert rows is not None
                self.sheet.offer(j, item.key, rows[r])
                run.append(j)
                r += 1
            elif item.key in errors:
                self.shard.failures.append(
                    failure_record(item.key, j, self.shard.index, errors[item.key]))
                failed += 1
            else:
                raise IngestError(f"internal error: the batch does not follow the listing at "
                                  f"input {j} ({item.key!r})")
        if r != len(keys):
            raise IngestError("internal error: a batch has rows for inputs it does not cover")
        self._write(rows, r0, run, keys, labels)
        self.pos += nb
        self.ok += r
        self.failed += failed
        self.progress.update(nb, failed)

    def _write(self, rows: np.ndarray | None, r0: int, run: list[int], keys: Sequence[str],
               labels: Sequence[Any] | None) -> None:
        if not run:
            return
        assert rows is not None and self.shard is not None
        r1 = r0 + len(run)
        labs = (list(labels[r0:r1]) if labels is not None
                else [self.items[j].label for j in run])
        try:
            self.shard.file.add(rows[r0:r1], list(keys[r0:r1]), labs, run)
        except OSError as e:
            raise IngestError(f"writing {self.shard.tmp} failed: {e}") from None

    def _finish_shard(self) -> None:
        sh = self.shard
        assert sh is not None
        out = self.opts.out
        try:
            sh.file.finish()
            sh.f.close()
            os.replace(sh.tmp, sh.final)
            if sh.failures:
                with open(out / FAILURES, "a", encoding="utf-8") as f:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in sh.failures)
            self.state.shards.append({
                "index": sh.index, "name": sh.name, "items": [sh.start, sh.stop],
                "ok": sh.file.count, "failed": len(sh.failures)})
            self.state.complete = sh.stop == self.state.items
            _write_json(out / MANIFEST, self.state.to_json())
        except OSError as e:
            raise IngestError(f"writing {sh.final} failed: {e}") from None
        self.shard = None

    def finish(self) -> None:
        if self.pos != self.stop:
            raise IngestError(f"the iterator gave {self.pos - self.start} inputs, "
                              f"expected {self.stop - self.start}")
        if self.shard is not None:
            self._finish_shard()

    def abort(self) -> None:
        """Close and remove a shard left unfinished (an error or an interrupt)."""
        sh, self.shard = self.shard, None
        if sh is not None:
            sh.f.close()
            try:
                os.unlink(sh.tmp)
            except OSError:
                pass


def _to_numpy(buf: Any) -> np.ndarray:
    import spdl.io

    return spdl.io.to_numpy(buf)


def _versions() -> dict[str, str]:
    import platform

    from spdl._version import __version__

    return {"pixelbatch": __version__, "numpy": np.__version__, "python": platform.python_version()}


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run, print a one-line result, return the exit status."""
    opts = parse_options(argv)
    try:
        summary = run(opts)
    except IngestError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished shards are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # the loader refused the whole run (ConfigError, ...)
        from spdl.io._errors import SpdlIOError

        if not isinstance(e, (SpdlIOError, OSError)):
            raise
        print(f"{PROG}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not opts.quiet and not summary.get("nothing_to_do"):
        state = "done" if summary["complete"] else "stopped early (run again to resume)"
        t = summary["this_run"]
        print(f"{PROG}: {state}: {summary['images_ok']} images in {len(summary['shards'])} shards, "
              f"{summary['images_failed']} failed; this run: {t['items']} inputs in "
              f"{summary['seconds']:.2f} s ({summary['images_per_s'] or 0:.0f} img/s) -> {opts.out}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
