"""Warn when Meta's SPDL is installed beside this package.

Meta's distributions (spdl-io, spdl-core, and spdl, which pulls both in) install files
under the same spdl/ directory as this one (spdl/__init__.py, spdl/io/__init__.py,
spdl/io/_config.py), so whichever was installed last has overwritten the other's files.
"""

from __future__ import annotations

import os
import sys
import warnings

#: The distributions of Meta's SPDL that own files under spdl/, as their .dist-info
#: directories spell them.
META_DISTRIBUTIONS = ("spdl_io", "spdl_core")


def meta_spdl_installed() -> list[str]:
    """'name version' of each of Meta's distributions on sys.path.

    Reads the directory listings of sys.path (under a millisecond) instead of importing
    importlib.metadata (tens of milliseconds at every import of spdl.io).
    """
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            dist, _, version = name.removesuffix(".dist-info").partition("-")
            if name.endswith(".dist-info") and dist.lower() in META_DISTRIBUTIONS:
                found.append(f"{dist.replace('_', '-')} {version}")
    return found


def warn_if_meta_spdl() -> None:
    found = meta_spdl_installed()
    if found:
        warnings.warn(
            f"Meta's SPDL ({', '.join(found)}) is installed in this environment beside "
            "pixelbatch, and both install files under spdl/: whichever was installed last has "
            "overwritten the other's, so `import spdl.io` may load a mix of the two. Keep them "
            "in separate environments, or here: `pip uninstall spdl spdl-io spdl-core`, then "
            "`pip install --force-reinstall pixelbatch`.",
            RuntimeWarning, stacklevel=2)
