"""The `promax` console script: the library's own command line."""

import sys

from . import _native


def main() -> int:
    """Runs `promax` with this process's arguments; returns its exit status."""
    return _native.cli([sys.argv[0], *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
