"""Finish a repaired wheel: add the bundled libraries' licenses, then check what it holds.

    python packaging/finish_wheel.py WHEEL PREFIX OUTDIR

PREFIX is packaging/build_native.sh's prefix; its licenses/ (FFmpeg, libjpeg-turbo, zlib,
libtiff, libwebp, dav1d, libyuv, libavif, copied from their Debian source trees) go into the wheel's
<name>.dist-info/licenses/bundled/. The result, written into OUTDIR, must hold no build
leftovers (.c, .pyx, .pxd, .h), only stripped ELF files, every library of BUNDLED in
<name>.libs/ and none of the ones built in statically or left out, and weigh under 20 MB;
its path is printed last.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

MAX_BYTES = 20 * 1000 * 1000
LEFTOVERS = (".c", ".pyx", ".pxd", ".h", ".o")
#: The libraries auditwheel must have copied into <name>.libs/ (as <lib>-<hash>.so.<N>).
BUNDLED = ("libavcodec", "libavfilter", "libavformat", "libavutil", "libswscale",
           "libturbojpeg", "libjpeg", "libtiff", "libwebp", "libwebpdemux", "libavif")
#: Never there: zlib is static inside FFmpeg and libtiff, dav1d and libyuv inside libavif;
#: the others are left out of the bundle (a copy would mean a module linked a system library).
NOT_BUNDLED = ("libz", "libdav1d", "libaom", "librav1e", "libgav1", "libSvtAv1Dec", "libyuv",
               "libsharpyuv", "liblzma", "libzstd", "libjbig", "libLerc", "libdeflate",
               "libwebpmux", "libwebpdecoder", "libtiffxx", "libpng")
LICENSES = ("ffmpeg/COPYING.LGPLv2.1", "libjpeg-turbo/LICENSE.md", "zlib/LICENSE",
            "libtiff/LICENSE.md", "libwebp/COPYING", "libwebp/PATENTS", "dav1d/COPYING",
            "libyuv/LICENSE", "libavif/LICENSE")


def add_licenses(wheel: pathlib.Path, prefix: pathlib.Path, outdir: pathlib.Path) -> pathlib.Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(wheel)],
                       check=True, capture_output=True)
        (root,) = pathlib.Path(tmp).iterdir()
        (info,) = root.glob("*.dist-info")
        shutil.copytree(prefix / "licenses", info / "licenses" / "bundled")
        shutil.copy(prefix / "BUILDINFO", info / "licenses" / "bundled" / "BUILDINFO")
        out = pathlib.Path(tmp) / "out"
        out.mkdir()
        subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", str(out), str(root)],
                       check=True, capture_output=True)
        (packed,) = out.glob("*.whl")
        outdir.mkdir(parents=True, exist_ok=True)
        dest = outdir / packed.name
        shutil.move(packed, dest)
    return dest


def unstripped(data: bytes) -> bool:
    """An ELF file that still has a symbol table (.symtab) or debug sections."""
    import io

    from elftools.elf.elffile import ELFFile  # pyelftools, auditwheel's dependency

    elf = ELFFile(io.BytesIO(data))
    return any(s.name == ".symtab" or s.name.startswith(".debug") for s in elf.iter_sections())


def check(wheel: pathlib.Path) -> list[str]:
    problems = []
    size = wheel.stat().st_size
    if size >= MAX_BYTES:
        problems.append(f"{size / 1e6:.1f} MB, over the 20 MB limit")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for n in names:
            if n.endswith(LEFTOVERS):
                problems.append(f"build leftover: {n}")
            if ".so" in pathlib.PurePath(n).name:
                if unstripped(z.read(n)):
                    problems.append(f"not stripped: {n}")
        libs = sorted(n for n in names if ".libs/" in n)
        mods = sorted(n for n in names if n.endswith(".so") and ".libs/" not in n)
        lic = sorted(n for n in names if "/licenses/bundled/" in n)
    for want in LICENSES:
        if not any(n.endswith("/licenses/bundled/" + want) for n in lic):
            problems.append(f"missing license file {want}")
    have = {re.sub(r"(-[0-9a-f]{8})?\.so.*$", "", pathlib.PurePath(n).name) for n in libs}
    problems += [f"no bundled {want} in .libs/" for want in BUNDLED if want not in have]
    problems += [f"bundled {bad}: built in statically or left out, a module must not link it"
                 for bad in NOT_BUNDLED if bad in have]
    print(f"{wheel.name}: {size / 1e6:.2f} MB, {len(mods)} extension modules, "
          f"{len(libs)} bundled libraries: {', '.join(pathlib.PurePath(n).name for n in libs)}",
          file=sys.stderr)
    return problems


def main() -> int:
    wheel, prefix, outdir = map(pathlib.Path, sys.argv[1:4])
    dest = add_licenses(wheel, prefix, outdir)
    problems = check(dest)
    for p in problems:
        print(f"finish_wheel: {p}", file=sys.stderr)
    if problems:
        dest.unlink()
        return 1
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
