"""The number of threads of this node's select_server.py, from /proc (the node has no ps).

python3 threads.py
"""

import os

for entry in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
        with open(f"/proc/{entry}/status") as status:
            threads = next(line.split()[1] for line in status if line.startswith("Threads:"))
    except (OSError, StopIteration):
        continue
    if words[0].startswith(b"python3") and any(w.endswith(b"select_server.py") for w in words):
        print(f"select_server.py (pid {entry}): {threads} thread(s)")
