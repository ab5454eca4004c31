"""The CUDA loader against the real CUDA 13 and CUDA 12 wheels, on a machine without a GPU.

tests/cuda_wheels.sh makes two virtualenvs (cached in $SPDL_CUDA_WHEELS_CACHE,
default /var/cache/spdl-cudawheels) holding what ``pip install
pixelbatch[cuda13]`` / ``[cuda12]`` installs: nvidia-cuda-runtime,
nvidia-nvjpeg, nvidia-npp 13.x, and the -cu12 wheels. Each test here runs a
probe with that virtualenv's Python and spdl.io on PYTHONPATH (the libraries
load without a GPU) and checks that the loader picks that set, that
cuda_info() reports each library inside the virtualenv with a 13.x / 12.x
version, and that every GPU entry point says "no CUDA device" (there is no
NVIDIA driver here), never that a library is missing. Without the
virtualenvs the tests skip, saying how to make them. These are not GPU
tests: a GPU machine with the wheels installed checks the same by running
the GPU tests.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spdl

SPDL_ROOT = Path(spdl.__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SPDL_CUDA_WHEELS_CACHE", "/var/cache/spdl-cudawheels"))
PYTAG = "%d%d" % sys.version_info[:2]

_PROBE = textwrap.dedent("""
    import asyncio, json, os, sys
    import spdl.io
    from spdl.io import CUDAConfig
    from spdl.io import _cuda_device, _cuda_lib, _nvjpeg_lib, _pinned, _testing

    # The virtualenv's wheels, not this machine's own CUDA (/usr/local/cuda, the ld.so cache).
    _cuda_lib._SYSTEM_CUDA = ()
    _search = _cuda_lib.library_candidates
    _cuda_lib.library_candidates = lambda module, soname: [p for p in _search(module, soname) if os.sep in p]

    jpeg = open(sys.argv[1], "rb").read()
    cfg = CUDAConfig(0)
    info = spdl.io.cuda_info()
    cpu = spdl.io.load_image_batch([jpeg], width=8, height=8)          # a real CPUBuffer
    calls = {
        "check_device": lambda: _cuda_device.check_device(cfg),
        "host_allocator": lambda: _pinned.host_allocator(cfg),
        "transfer_buffer": lambda: spdl.io.transfer_buffer(cpu, device_config=cfg),
        "async_transfer_buffer": lambda: asyncio.run(spdl.io.async_transfer_buffer(cpu, device_config=cfg)),
        "load_image_batch": lambda: spdl.io.load_image_batch([jpeg], width=8, height=8, device_config=cfg),
        "async_load_image_batch": lambda: asyncio.run(spdl.io.async_load_image_batch(
            [jpeg], width=8, height=8, device_config=cfg)),
        "load_image_batch_nvjpeg": lambda: spdl.io.load_image_batch_nvjpeg(
            [jpeg], device_config=cfg, width=8, height=8),
        "async_load_image_batch_nvjpeg": lambda: asyncio.run(spdl.io.async_load_image_batch_nvjpeg(
            [jpeg], device_config=cfg, width=8, height=8)),
    }
    errors = {}
    for name, call in calls.items():
        try:
            call()
            errors[name] = None
        except Exception as e:
            errors[name] = {"type": type(e).__name__, "unavailable": isinstance(e, spdl.io.CUDAUnavailableError),
                            "message": str(e), "library": getattr(e, "library", None), "op": getattr(e, "op", None)}
    try:
        libs = [lib.path for lib in _nvjpeg_lib.load_libraries()]
    except Exception as e:
        libs = f"{type(e).__name__}: {e}"
    print("PROBE " + json.dumps({"prefix": sys.prefix, "info": info, "errors": errors, "nvjpeg_libs": libs,
                                 "nvjpeg_info": _nvjpeg_lib.nvjpeg_info(),
                                 "symbols": {w: _testing.probe_nvjpeg_library(w)
                                             for w in ("nvjpeg", "nppc", "nppig", "nppicc", "nppidei")}}))
""")


#: The libraries the nvJPEG loader opens (load_libraries), in its order.
_GPU_LIBS = ("nvjpeg", "nppc", "nppig", "nppicc", "nppidei")


def _venv_python(major):
    venv = CACHE / f"venv-cu{major}-py{PYTAG}"
    py = venv / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no virtualenv with the CUDA {major} wheels at {venv}: run tests/cuda_wheels.sh")
    return venv, py


def _jpeg(tmp_path):
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(b, "JPEG")
    p = tmp_path / "x.jpg"
    p.write_bytes(b.getvalue())
    return p


def _probe(py, tmp_path, extra_path=()):
    env = dict(os.environ)
    for var in ("CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH", "SPDL_REQUIRE_GPU"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(SPDL_ROOT), *map(str, extra_path)])
    r = subprocess.run([str(py), "-c", _PROBE, str(_jpeg(tmp_path))], capture_output=True, text=True,
                       env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def _site(out):
    return Path(out["prefix"]) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.mark.parametrize("major", [13, 12])
def test_the_wheels_are_found_loaded_and_reported(tmp_path, major):
    venv, py = _venv_python(major)
    out = _probe(py, tmp_path)
    info = out["info"]
    site = _site(out)
    assert Path(out["prefix"]).resolve() == venv.resolve()
    assert info["cuda_major"] == major, info["reason"]
    libdir = {13: {n: "cu13" for n in ("cudart", *_GPU_LIBS)},
              12: {"cudart": "cuda_runtime", "nvjpeg": "nvjpeg", **{n: "npp" for n in _GPU_LIBS[1:]}}}[major]
    stem = {n: f"lib{n}" for n in ("cudart", *_GPU_LIBS)}
    for name, d in libdir.items():
        lib = info[name]
        assert lib["error"] is None, (name, lib["error"])
        assert lib["path"] == str(site / "nvidia" / d / "lib" / f"{stem[name]}.so.{major}"), (name, lib)
        assert lib["soname"] == f"{stem[name]}.so.{major}"
        assert lib["version"].startswith(f"{major}."), (name, lib["version"])
        assert len(lib["version"].split(".")) == (2 if name == "cudart" else 3)
    assert out["nvjpeg_libs"] == [info[n]["path"] for n in _GPU_LIBS]
    assert out["nvjpeg_info"]["error"] is None and out["nvjpeg_info"]["nvjpeg_version"] == info["nvjpeg"]["version"]
    assert out["symbols"] == {n: info[n]["path"] for n in _GPU_LIBS}
    # No NVIDIA driver here: no device, and it says so.
    assert info["driver_version"] is None and info["libcuda"]["path"] is None
    assert info["device_count"] == 0 and info["device_error"].startswith("no CUDA device")


@pytest.mark.parametrize("major", [13, 12])
def test_gpu_entry_points_say_no_cuda_device(tmp_path, major):
    _, py = _venv_python(major)
    out = _probe(py, tmp_path)
    for name, e in out["errors"].items():
        assert e is not None, f"{name} did not raise"
        assert e["unavailable"], (name, e)
        assert e["message"].startswith("no CUDA device: cudaGetDeviceCount failed with "), (name, e["message"])
        assert "no NVIDIA driver" in e["message"], (name, e["message"])
        assert f"the CUDA {major} runtime {out['info']['cudart']['path']} loaded" in e["message"]
        assert e["library"] is None and e["op"] == "cudaGetDeviceCount", (name, e)
        assert "could not be loaded" not in e["message"]


def test_both_sets_installed_without_a_driver_takes_cuda13(tmp_path):
    """Both sets on sys.path (the CUDA 12 venv first): one major, CUDA 13, all from its venv."""
    _, py12 = _venv_python(12)
    venv13, py13 = _venv_python(13)
    site13 = _site(_probe(py13, tmp_path))
    out = _probe(py12, tmp_path, extra_path=[site13])
    info = out["info"]
    assert info["cuda_major"] == 13
    for name in ("cudart", *_GPU_LIBS):
        assert info[name]["path"].startswith(str(site13 / "nvidia" / "cu13" / "lib")), (name, info[name])
    assert out["errors"]["load_image_batch_nvjpeg"]["message"].startswith("no CUDA device")
