"""Count this node's python3 processes running served.py, from /proc (the node has no ps).

python3 pids.py
"""

import os

found = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        # words[0]: the program itself, not the container's init, whose arguments name served.py too
        if words[0].startswith(b"python3") and any(word.endswith(b"served.py") for word in words):
            found.append(entry)
print(f"served.py processes now: {len(found)}")
