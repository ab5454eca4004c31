"""``python -m spdl.ingest``: the ingestion command line (also the console script ``spdl-ingest``).

See spdl.io._cli for the arguments, or run ``python -m spdl.ingest --help``.
"""

import sys

from spdl.io._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
