"""Build the Cython extension modules of spdl.io against the system FFmpeg and libjpeg-turbo.

Their compile and link flags come from pkg-config. Every spdl/io/*.pyx is
one extension module.
"""

import glob
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup

FFMPEG_LIBS = ["libavformat", "libavcodec", "libavfilter", "libswscale", "libavutil",
               "libturbojpeg"]
APT_HINT = ("apt-get install pkg-config libavformat-dev libavcodec-dev libavfilter-dev "
            "libswscale-dev libavutil-dev libturbojpeg0-dev")


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, *FFMPEG_LIBS], check=True,
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit(f"spdl: pkg-config is not installed; on Debian/Ubuntu: {APT_HINT}")
    except subprocess.CalledProcessError as e:
        sys.exit(f"spdl: FFmpeg development files not found ({e.stderr.strip()}); "
                 f"on Debian/Ubuntu: {APT_HINT}")
    return shlex.split(out)


def extensions():
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
    exts = []
    # SPDL_BUILD_ONLY=_scale,_jpeg: a developer's shortcut to rebuild some modules in place.
    only = {m for m in os.environ.get("SPDL_BUILD_ONLY", "").split(",") if m}
    for pyx in sorted(glob.glob("spdl/io/*.pyx")):
        name = pyx[:-4].replace(os.sep, ".")
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        exts.append(Extension(
            name, [pyx],
            include_dirs=include_dirs,
            extra_compile_args=[f for f in cflags if not f.startswith("-I")] + ["-O3"],
            library_dirs=[f[2:] for f in libs if f.startswith("-L")],
            libraries=[f[2:] for f in libs if f.startswith("-l")],
            depends=glob.glob("spdl/io/csrc/*.h"),
        ))
    return exts


def cythonize(exts):
    from Cython.Build import cythonize as _cythonize

    return _cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "binding": True,
        },
        nthreads=os.cpu_count() or 1,
    )


setup(ext_modules=cythonize(extensions()))
