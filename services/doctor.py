"""``python -m services.doctor``: the textbook's therapist, one session per client."""

from __future__ import annotations

import sys

from protocols import doctor
from services.launch import stream_service
from services.runners import Limits

# Seconds for a line: people talk to the doctor, and a client in character mode sends each key as it is typed.
PEOPLE_TYPING = 30.0

main = stream_service(
    "doctor",
    "ELIZA-style therapist: a greeting line on connect, one reply line to every line; "
    "an empty line (or EOF) ends the session with a farewell.",
    doctor.DoctorSession,
    port=doctor.PORT,
    model="threaded",
    limits=Limits(max_clients=256, idle_timeout=300.0, line_deadline=PEOPLE_TYPING),
)

if __name__ == "__main__":
    sys.exit(main())
