#!/usr/bin/env python3
"""CPU vs GPU image batch loading: images/s, and end to end to a CUDA tensor.

    python benchmarks/bench_gpu.py [--set-dir DIR | --synthetic N] [--batch-size 64]
                                   [--width 224 --height 224] [--rounds 3] [--device 0]
                                   [--json OUT.json]

Methods (every one decodes the same encoded bytes, already in memory):

``cpu``
    ``async_load_image_batch`` on the CPU (FFmpeg / libjpeg-turbo, one worker
    thread per CPU this process may run on): the batch ends in host memory.
    The baseline.
``cpu_to_gpu``
    ``async_load_image_batch(device_config=...)``: decoded on the CPU into
    page-locked memory, copied with cudaMemcpyAsync; timed until the copy has
    completed on the GPU.
``nvjpeg``
    ``load_image_batch_nvjpeg``: nvJPEG's batched decoder (the hardware engine
    on A100 / H100, GPU-hybrid elsewhere) and NPP's resize; timed until the
    batch is complete on the GPU.
``*_torch``
    The same two GPU methods with PyTorch's caching allocator
    (``CUDAConfig(allocator=...)``) on PyTorch's current stream, ending in a
    ``torch.Tensor`` (``spdl.io.to_torch``, no copy) after
    ``torch.cuda.synchronize()``. Only when PyTorch with CUDA is installed.

Each method is warmed up on two batches, then timed over ``--rounds``
passes of the set. Prints one line ``RESULT {json}`` per method and a table;
``--json`` also writes ``{"env", "images", "source", "cpu_threads",
"results"}`` to a file (benchmarks/gpu_check.sh reads it).

The image set: ``--set-dir`` (default ``$SPDL_BENCH_ROOT/imagenet`` or
``~/.cache/spdl-bench/imagenet``, made by ``benchmarks/data.py``), or
``--synthetic N`` JPEGs made with Pillow.

Without a CUDA device it prints ``SKIP <reason>`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _default_set_dir() -> Path:
    root = os.environ.get("SPDL_BENCH_ROOT") or str(Path.home() / ".cache" / "spdl-bench")
    return Path(root) / "imagenet"


def _read_set(set_dir: Path, limit: int | None) -> list[bytes]:
    files = sorted(p for p in set_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if limit:
        files = files[:limit]
    return [p.read_bytes() for p in files]


def _synthetic(n: int, seed: int = 0) -> list[bytes]:
    from PIL import Image

    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        w, h = int(rng.randint(333, 501)), int(rng.randint(333, 501))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
        img += rng.normal(0, 8, size=img.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _batches(datas: list[bytes], size: int) -> list[list[bytes]]:
    return [datas[i:i + size] for i in range(0, len(datas), size)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set-dir", type=Path, default=None)
    ap.add_argument("--synthetic", type=int, default=0, help="use N generated JPEGs instead of a set")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=224)
    ap.add_argument("--height", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = ap.parse_args()

    import spdl.io
    from spdl.io import CUDAConfig
    from spdl.io import _cuda_device, _nvjpeg_decode
    from spdl.io._batch import default_workers

    def write_json(**fields):
        if args.json is not None:
            args.json.write_text(json.dumps(fields, indent=1))

    if not spdl.io.cuda_available():
        reason = None
        try:
            _cuda_device.check_device(CUDAConfig(args.device))
        except spdl.io.CUDAUnavailableError as e:
            reason = str(e).splitlines()[0]
        print(f"SKIP {reason or 'no CUDA device'}")
        write_json(skipped=reason or "no CUDA device", results=[])
        return 0

    if args.synthetic:
        datas = _synthetic(args.synthetic)
        source = f"synthetic:{args.synthetic}"
    else:
        set_dir = args.set_dir or _default_set_dir()
        if not set_dir.is_dir():
            print(f"SKIP no image set at {set_dir} (run benchmarks/data.py, or pass --synthetic N)")
            return 0
        datas = _read_set(set_dir, args.limit)
        source = str(set_dir)
    if not datas:
        print("SKIP the image set is empty")
        return 0
    batches = _batches(datas, args.batch_size)
    w, h, dev = args.width, args.height, args.device
    cfg = CUDAConfig(dev)

    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        torch, have_torch = None, False

    def torch_cfg():
        return CUDAConfig(dev, stream=torch.cuda.current_stream(dev).cuda_stream,
                          allocator=(torch.cuda.caching_allocator_alloc, torch.cuda.caching_allocator_delete))

    async def run_cpu(batch):
        return await spdl.io.async_load_image_batch(batch, width=w, height=h)

    async def run_cpu_to_gpu(batch):
        buf = await spdl.io.async_load_image_batch(batch, width=w, height=h, device_config=cfg)
        buf.synchronize()
        return buf

    async def run_nvjpeg(batch):
        buf = await spdl.io.async_load_image_batch_nvjpeg(batch, device_config=cfg, width=w, height=h)
        buf.synchronize()
        return buf

    async def run_cpu_to_gpu_torch(batch):
        buf = await spdl.io.async_load_image_batch(batch, width=w, height=h, device_config=torch_cfg())
        t = spdl.io.to_torch(buf)
        torch.cuda.synchronize(dev)
        return t

    async def run_nvjpeg_torch(batch):
        buf = await spdl.io.async_load_image_batch_nvjpeg(batch, device_config=torch_cfg(), width=w, height=h)
        t = spdl.io.to_torch(buf)
        torch.cuda.synchronize(dev)
        return t

    methods = {"cpu": run_cpu, "cpu_to_gpu": run_cpu_to_gpu, "nvjpeg": run_nvjpeg}
    if have_torch:
        methods.update({"cpu_to_gpu_torch": run_cpu_to_gpu_torch, "nvjpeg_torch": run_nvjpeg_torch})

    env = {"cuda_info": spdl.io.cuda_info()}
    try:
        from spdl.io import _nvjpeg_decode

        env["backends"] = _nvjpeg_decode.decoder_backends(dev)
    except spdl.io.CUDAError as e:
        env["nvjpeg_error"] = str(e)
    cpu_threads = default_workers()
    print(json.dumps({"images": len(datas), "source": source, "cpu_threads": cpu_threads}), file=sys.stderr)

    async def measure(fn):
        for b in batches[:2]:
            await fn(b)
        n = 0
        t0 = time.perf_counter()
        for _ in range(args.rounds):
            for b in batches:
                await fn(b)
                n += len(b)
        return n, time.perf_counter() - t0

    rows = []
    for name, fn in methods.items():
        try:
            n, dt = asyncio.run(measure(fn))
        except Exception as e:  # report and go on with the other methods
            result = {"method": name, "error": f"{type(e).__name__}: {e}"}
        else:
            result = {"method": name, "images": n, "seconds": round(dt, 4),
                      "images_per_s": round(n / dt, 1), "batch_size": args.batch_size,
                      "size": f"{w}x{h}", "device": dev}
        print("RESULT " + json.dumps(result), flush=True)
        rows.append(result)

    write_json(env=env, images=len(datas), source=source, cpu_threads=cpu_threads, results=rows)
    print(f"\n{'method':<20}{'images/s':>12}")
    for r in rows:
        print(f"{r['method']:<20}{r.get('images_per_s', r.get('error', '')):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
