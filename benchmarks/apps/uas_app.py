"""Benchmark UAS app on drachtio_srf: answer every INVITE with 200 + SDP via create_uas.

The same behaviour and stdin/stdout control protocol as benchmarks/node/uas_app.js, so both can
be measured under the same load (see that file's header for the commands).

usage: python uas_app.py ADMIN_PORT [SECRET] [--profile FILE] [--inline-experiment]

With ``--profile FILE`` every thread runs under cProfile timed by its own CPU time (the library
works on its own threads, which ``python -m cProfile`` would miss); stats go to FILE on ``quit``.
``--inline-experiment`` runs user code on the reader thread (see inline_experiment.py): a
measurement of the thread hand-off cost, not a supported way to run the library.
``BENCH_PIN_CPU=N`` in the environment pins the whole app to CPU N before it starts any thread
(``app_cpu_bench.py --ab-env BENCH_PIN_CPU=1`` measures the README's pinning tip).
"""
from __future__ import annotations

import gc
import json
import os
import sys
import threading
from typing import Any

from threadprof import ThreadProfiles

from drachtio_srf import Srf

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def say(line: str) -> None:
    """One line of the control protocol on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class UasApp:
    """Counts dialogs as they are created and destroyed; holds them until either side hangs up."""

    def __init__(self, srf: Srf) -> None:
        self.srf = srf
        self.lock = threading.Lock()
        self.open: set[Any] = set()
        self.releasing: set[Any] = set()
        self.created = self.destroyed = self.failed = self.release_errors = 0
        srf.invite(self.on_invite)

    def on_invite(self, req: Any, res: Any) -> None:
        self.srf.create_uas(req, res, {"localSdp": SDP}, self.on_dialog)

    def on_dialog(self, err: BaseException | None, dialog: Any = None) -> None:
        with self.lock:
            if err is not None:
                self.failed += 1
                return
            self.created += 1
            self.open.add(dialog)
        dialog.on("destroy", lambda *_: self.on_destroy(dialog))

    def on_destroy(self, dialog: Any, err: BaseException | None = None) -> None:
        with self.lock:
            self.releasing.discard(dialog)
            if err is not None:
                self.release_errors += 1
            if dialog in self.open:
                self.open.discard(dialog)
                self.destroyed += 1

    def stats(self) -> dict[str, int]:
        with self.lock:
            lib = len(getattr(self.srf, "_dialogs", {}) or {})
            return {"created": self.created, "destroyed": self.destroyed, "failed": self.failed,
                    "open": len(self.open), "library_dialogs": lib,
                    "release_errors": self.release_errors}

    def release(self, k: int = 0) -> int:
        """Hang up ``k`` open dialogs (all when 0) that are not already being hung up."""
        with self.lock:
            batch = [d for d in self.open if d not in self.releasing][:k or None]
            self.releasing.update(batch)
        for dialog in batch:
            dialog.destroy(lambda err, *_a, d=dialog: self.on_destroy(d, err))
        return len(batch)


def main(argv: list[str]) -> int:
    pin = os.environ.get("BENCH_PIN_CPU")
    if pin:
        os.sched_setaffinity(0, {int(pin)})
    profile_to = None
    if "--profile" in argv:
        i = argv.index("--profile")
        profile_to = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if "--inline-experiment" in argv:
        argv = [a for a in argv if a != "--inline-experiment"]
        import inline_experiment
        inline_experiment.install()
    profiles = ThreadProfiles() if profile_to else None
    port = int(argv[0])
    secret = argv[1] if len(argv) > 1 else "cymru"
    srf = Srf()
    app = UasApp(srf)
    ready = threading.Event()
    errors: list[BaseException] = []

    def on_connect(err: BaseException | None, *_: Any) -> None:
        if err is not None:
            errors.append(err)
        ready.set()

    srf.connect({"host": "127.0.0.1", "port": port, "secret": secret}, on_connect)
    if not ready.wait(10) or errors:
        say(f"ERROR connect {errors[0] if errors else 'timeout'}")
        return 1
    say("READY")
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            say("STATS " + json.dumps(app.stats()))
        elif cmd == "gc":
            gc.collect()
            say("GC")
        elif cmd.startswith("release"):
            parts = cmd.split()
            say(f"RELEASING {app.release(int(parts[1]) if len(parts) > 1 else 0)}")
        elif cmd == "quit":
            break
    srf.disconnect()
    if profiles is not None and profile_to:
        profiles.dump(profile_to)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
