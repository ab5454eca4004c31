"""Build the Cython extension modules of spdl.io (the distribution is named pixelbatch).

Every spdl/io/*.pyx is one extension module. They link FFmpeg's libav* and libturbojpeg,
taken from where SPDL_NATIVE says:

    system   the system's, found by pkg-config (Debian/Ubuntu: the -dev packages below)
    bundle   the pinned build of packaging/build_native.sh (its cache, or SPDL_NATIVE_PREFIX)
    (unset)  system when pkg-config finds it, else the bundle when it is built

The modules are cythonized when build_ext runs, so an sdist or the metadata needs neither
Cython nor FFmpeg. SPDL_BUILD_ONLY=_scale,_jpeg rebuilds only those modules (a developer's
shortcut, with `setup.py build_ext --inplace`).
"""

import glob
import os
import re
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# pkg-config names of the native libraries every module links: FFmpeg's, then libjpeg-turbo's
# (TurboJPEG for whole images, its libjpeg API for a crop's rows and columns only).
FFMPEG_LIBS = ["libavformat", "libavcodec", "libavfilter", "libswscale", "libavutil"]
JPEG_LIBS = ["libturbojpeg", "libjpeg"]  # libjpeg: the region-only decode of crops
# The formats FFmpeg 5.1 decodes wrong or not at all: TIFF (libtiff), animated WebP's first
# frame (libwebp's demux API), AVIF (libavif, decoding with dav1d).
FORMAT_LIBS = ["libtiff-4", "libwebpdemux", "libwebp", "libavif"]
NATIVE_LIBS = FFMPEG_LIBS + JPEG_LIBS + FORMAT_LIBS
APT_PACKAGES = ("pkg-config libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev "
                "libavutil-dev libturbojpeg0-dev libjpeg-dev libtiff-dev libwebp-dev libavif-dev")
BUILD_NATIVE = os.path.join(HERE, "packaging", "build_native.sh")


def say(msg):
    print(f"[spdl] {msg}", flush=True)


def fail(msg):
    sys.exit(f"spdl: {msg}")


def pkg_config(*args, libdir=None):
    """pkg-config's words for NATIVE_LIBS; with libdir, only the .pc files there are seen."""
    env = dict(os.environ)
    if libdir is not None:
        env.update(PKG_CONFIG_LIBDIR=libdir, PKG_CONFIG_PATH="")
    out = subprocess.run(["pkg-config", *args, *NATIVE_LIBS], check=True, capture_output=True,
                         text=True, env=env).stdout
    return shlex.split(out)


def bundle_prefix():
    """The bundle's prefix: SPDL_NATIVE_PREFIX, else build_native.sh's cached build, else None."""
    prefix = os.environ.get("SPDL_NATIVE_PREFIX")
    if prefix:
        if not os.path.isdir(os.path.join(prefix, "lib", "pkgconfig")):
            fail(f"SPDL_NATIVE_PREFIX={prefix} has no lib/pkgconfig: not a build_native.sh prefix")
        return prefix
    if os.path.exists(BUILD_NATIVE):
        r = subprocess.run(["bash", BUILD_NATIVE, "--print-prefix"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return None


def no_native_libraries(why):
    fail(
        f"the extension needs FFmpeg ({', '.join(FFMPEG_LIBS)}) and {', '.join(JPEG_LIBS + FORMAT_LIBS)}, "
        "and found neither the system's nor a bundle. Either "
        f"install the system's development files (Debian/Ubuntu: apt-get install {APT_PACKAGES}; "
        "FFmpeg 5.1 to 7.x) and build again, or build the pinned bundle from Debian's sources "
        "with `bash packaging/build_native.sh` (a few minutes, cached) and build with "
        f"SPDL_NATIVE=bundle (or SPDL_NATIVE_PREFIX=<its prefix>). ({why})")


def native_flags():
    """(description, cflags, libs, rpath dirs) of the native libraries SPDL_NATIVE picks."""
    mode = os.environ.get("SPDL_NATIVE", "")
    if mode not in ("", "system", "bundle"):
        fail(f"SPDL_NATIVE must be 'system' or 'bundle', not {mode!r}")
    why = ""
    if mode in ("", "system"):
        try:
            cflags, libs = pkg_config("--cflags"), pkg_config("--libs")
            version = pkg_config("--modversion")[0]
            return f"system (pkg-config; libavformat {version})", cflags, libs, []
        except FileNotFoundError:
            why = "pkg-config is not installed"
        except subprocess.CalledProcessError as e:
            missing = re.findall(r"Package '([^']+)'.*? not found", e.stderr)
            why = (f"pkg-config finds no {', '.join(missing)}" if missing
                   else "pkg-config: " + " ".join(e.stderr.split()))
        if mode == "system":
            fail(f"SPDL_NATIVE=system, but {why}; on Debian/Ubuntu: apt-get install {APT_PACKAGES}")
    prefix = bundle_prefix()
    if prefix is None:
        if mode == "bundle":
            fail("SPDL_NATIVE=bundle, but no bundle is built: run `bash packaging/build_native.sh` "
                 "or set SPDL_NATIVE_PREFIX")
        no_native_libraries(why)
    pcdir = os.path.join(prefix, "lib", "pkgconfig")
    try:
        cflags, libs = pkg_config("--cflags", libdir=pcdir), pkg_config("--libs", libdir=pcdir)
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        fail(f"the bundle at {prefix} is unusable ({e}); rebuild it with packaging/build_native.sh")
    # The run path lets an in-place build load the bundle; auditwheel replaces it in a wheel.
    return f"bundle {prefix}", cflags, libs, [os.path.join(prefix, "lib")]


def extensions():
    """One Extension per .pyx (flags are filled in by BuildExt)."""
    only = {m for m in os.environ.get("SPDL_BUILD_ONLY", "").split(",") if m}
    exts = []
    for pyx in sorted(glob.glob("spdl/io/*.pyx")):
        name = pyx[:-4].replace(os.sep, ".")
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        exts.append(Extension(name, [pyx], depends=sorted(glob.glob("spdl/io/csrc/*.h"))))
    return exts


class BuildExt(build_ext):
    """Find the native libraries, cythonize, then compile: one line per stage."""

    def run(self):
        desc, cflags, libs, rpath = native_flags()
        say(f"native libraries: {desc}")
        # A module built against other libraries is not up to date: the flags go into a file
        # every module depends on, rewritten (so newer than every module) when they change.
        stamp = os.path.join(self.build_temp, "spdl-native.txt")
        flags = "\n".join([desc, *cflags, *libs, *rpath])
        try:
            with open(stamp) as f:
                same = f.read() == flags
        except OSError:
            same = False
        if not same:
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(flags)
        for ext in self.extensions:
            ext.include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
            ext.extra_compile_args = [f for f in cflags if not f.startswith("-I")] + ["-O3"]
            ext.library_dirs = [f[2:] for f in libs if f.startswith("-L")]
            ext.libraries = [f[2:] for f in libs if f.startswith("-l")]
            ext.runtime_library_dirs = list(rpath)
            ext.depends = [*ext.depends, stamp]
        from Cython.Build import cythonize

        say(f"cythonizing {len(self.extensions)} module(s)")
        cythonized = cythonize(
            self.extensions,
            compiler_directives={"language_level": 3, "embedsignature": True, "binding": True},
            nthreads=os.cpu_count() or 1,
            quiet=True,
        )
        # Keep setuptools' own (finalized) Extension objects; take only the .c sources.
        c_sources = {ext.name: ext.sources for ext in cythonized}
        for ext in self.extensions:
            ext.sources = c_sources[ext.name]
        say(f"compiling {len(self.extensions)} module(s)")
        super().run()


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
