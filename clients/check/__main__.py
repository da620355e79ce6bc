"""``python3 -m clients.check``: see ``clients.check.cli``."""

from __future__ import annotations

import sys

from clients.check.cli import main

if __name__ == "__main__":
    sys.exit(main())
