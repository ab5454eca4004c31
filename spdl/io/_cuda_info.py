"""spdl.io.cuda_info(): what the GPU path finds on this machine, for bug reports and checks."""

from __future__ import annotations

from typing import Any

__all__ = ["cuda_info"]

_LIBRARIES = ("cudart", "nvjpeg", "nppc", "nppig", "nppicc", "nppidei")


def _failed(e: BaseException) -> dict[str, Any]:
    return {"soname": None, "path": None, "version": None, "error": f"{type(e).__name__}: {e}", "tried": []}


def cuda_info() -> dict[str, object]:
    """What the GPU path finds here: each CUDA library, the driver, the devices. Never raises.

    Returns a dict (plain values only, ready for ``json.dumps``):

    * ``"cuda_major"``: 13 or 12, the CUDA major whose libraries spdl.io
      loads, or None when none can be used; ``"reason"``: why.
    * ``"cudart"``, ``"nvjpeg"``, ``"nppc"``, ``"nppig"``, ``"nppicc"``,
      ``"nppidei"``, ``"libcuda"``: one dict per library, ``{"soname",
      "path", "version", "error", "tried"}``: the file it loaded and its
      version as a string
      (``"13.0"`` from ``cudaRuntimeGetVersion``; ``"13.3.2"`` from
      ``nvjpegGetProperty``; NPP's ``nppGetLibVersion`` for every NPP
      library; the driver's CUDA version for ``libcuda.so.1``), or
      ``path`` None and ``error`` saying why, with every path tried.
    * ``"driver_version"``: the CUDA version the NVIDIA driver runs, as
      ``"13.0"``, or None without a driver.
    * ``"device_count"``: how many CUDA devices the runtime sees (0 with
      none; None when the runtime is not loaded), and ``"device_error"``:
      why there is none, or None.
    * ``"devices"``: each GPU NVML lists (every GPU of the machine, in
      NVML's order, whatever ``CUDA_VISIBLE_DEVICES`` says), as ``{"index",
      "name", "compute_capability": "7.0"}``, read without initializing
      CUDA; ``"nvml"``: ``{"path", "error"}`` of libnvidia-ml.so.1. A GPU
      older than CUDA 13 supports (compute capability below 7.5) makes
      spdl.io choose CUDA 12.
    * ``"driver_api"``: whether spdl.io saves and restores each thread's
      context with the driver API (``{"library", "error"}``).

    Counting the devices initializes CUDA in this process (like
    :func:`cuda_available`): a process forked afterwards cannot use CUDA.
    """
    from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _nvjpeg_lib
    from spdl.io._errors import CUDAUnavailableError

    info: dict[str, Any] = {"cuda_major": None, "reason": None, "devices": [], "nvml": None}
    try:
        sel = _cuda_lib.select_cuda()
        info["cuda_major"] = sel["major"]
        info["reason"] = sel["reason"]
        info["devices"] = sel["gpus"]["devices"]
        info["nvml"] = {"path": sel["gpus"]["library"], "error": sel["gpus"]["error"]}
    except Exception as e:  # never raises: report what went wrong
        info["reason"] = f"{type(e).__name__}: {e}"
    try:
        rt = _cuda_runtime.runtime_info()
        info["cudart"] = {"soname": rt["soname"], "path": rt["library"], "version": rt["version"],
                          "error": rt["error"], "tried": rt["tried"]}
    except Exception as e:
        info["cudart"] = _failed(e)
    for name in _LIBRARIES[1:]:
        try:
            info[name] = _nvjpeg_lib.library_report(name)
        except Exception as e:
            info[name] = _failed(e)

    info["driver_version"] = None
    try:
        drv = _cuda_lib.driver_info()
        version = _cuda_lib.version_text(drv["version"]) if drv["version"] else None
        info["libcuda"] = {"soname": "libcuda.so.1", "path": drv["library"], "version": version,
                           "error": drv["error"], "tried": drv["tried"]}
        if version is None and info["cudart"]["path"] is not None:
            dv = rt["driver_version"]       # cudaDriverGetVersion: 0 without a driver
            version = _cuda_lib.version_text(dv) if dv else None
        info["driver_version"] = version
    except Exception as e:
        info["libcuda"] = _failed(e)

    info["device_count"] = None
    info["device_error"] = None
    if info["cudart"]["path"] is None:
        info["device_error"] = f"the CUDA runtime is not loaded: {info['cudart']['error']}"
    else:
        try:
            info["device_count"] = _cuda_device.device_count()
        except CUDAUnavailableError as e:
            info["device_count"] = 0
            info["device_error"] = str(e)
        except Exception as e:
            info["device_error"] = f"{type(e).__name__}: {e}"
    try:
        info["driver_api"] = _cuda_device.driver_api_info()
    except Exception as e:
        info["driver_api"] = {"library": None, "error": f"{type(e).__name__}: {e}"}
    return info
