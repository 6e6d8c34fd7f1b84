"""``python -m drachtio_srf.server`` under per-thread CPU profiling (see threadprof.py).

usage: python profiled_server.py PROFILE_FILE [server options...]; the stats are written when
the server exits (SIGTERM/SIGINT).
"""
from __future__ import annotations

import sys

from threadprof import ThreadProfiles

from drachtio_srf.server.__main__ import main

if __name__ == "__main__":
    profiles = ThreadProfiles()
    try:
        rc = main(sys.argv[2:])
    finally:
        profiles.dump(sys.argv[1])
    sys.exit(rc)
