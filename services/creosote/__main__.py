"""``python -m services.creosote``: run the sink (see ``services.creosote``)."""

from __future__ import annotations

import sys

from services.common import run_main
from services.creosote.cli import main

sys.exit(run_main(main))
