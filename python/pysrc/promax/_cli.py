"""The `promax` console script: the library's own command line."""

import signal
import sys

from . import _native


def main() -> int:
    """Runs `promax` with this process's arguments; returns its exit status.

    Ctrl-C and a closed output pipe act as on the Rust binary (the process ends; a compare
    or tune's cells die with it and resume later), not as Python's handlers would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return _native.cli([sys.argv[0], *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
