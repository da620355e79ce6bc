"""``python3 -m tools.delayline``."""

import sys

from tools.delayline.cli import main

if __name__ == "__main__":
    sys.exit(main())
