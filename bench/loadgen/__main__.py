"""``python3 -m bench.loadgen``: the load generators' command line (``bench.loadgen.cli``)."""

import sys

from bench.loadgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
