"""Print restarting_server.py's log once its restart has ended (ok, or given up); wait for that up to 10 s.

python3 restart_log.py
"""

import sys
import time

LOG = "/tmp/restarting_server.log"
ENDS = ("restart: gave up", "ok, listening again")

deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        with open(LOG) as log:
            text = log.read()
    except FileNotFoundError:
        text = ""
    if any(end in text for end in ENDS):
        print(text, end="")
        sys.exit(0)
    time.sleep(0.05)  # polling a file the server appends to; it ends as soon as the line is there
sys.exit(f"no restart in the log after 10 s:\n{text}")
