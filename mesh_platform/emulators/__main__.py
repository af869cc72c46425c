"""`python -m mesh_platform.emulators up [--state DIR] [--only aws,gcp,azure] [--postgres]`

Starts the cloud emulators, prints their standard SDK settings on stdout, one
`NAME=value` line each (and writes them to STATE/emulators.env), then keeps them running until
SIGINT or SIGTERM and stops them all. Progress and errors go to stderr. Exits 1 if an emulator
fails to start or dies while up.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from . import CLOUD_EMULATORS, Postgres
from ._process import EmulatorError, Service


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def up(state: Path | None, only: list[str], postgres: bool) -> int:
    stop_requested = threading.Event()

    def request_stop(signum, frame):
        stop_requested.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)

    temporary = state is None
    state = Path(tempfile.mkdtemp(prefix="mesh-emulators-")) if temporary else state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    services: dict[str, Service] = {name: CLOUD_EMULATORS[name](state_dir=state / name) for name in only}
    if postgres:
        services["postgres"] = Postgres(state_dir=state / "postgres")

    try:
        # One after another, from the main thread (see ProcessService._start): about 3 s in all.
        for name, service in services.items():
            try:
                service.start()
            except EmulatorError as error:
                _say(f"emulators: {name} failed to start: {error}")
                return 1
        settings: dict[str, str] = {}
        for name, service in services.items():
            _say(f"emulators: {name} ready on 127.0.0.1:{service.port} in {service.start_seconds:.1f} s")
            settings.update(service.env())
        lines = "".join(f"{k}={v}\n" for k, v in settings.items())
        (state / "emulators.env").write_text(lines)
        sys.stdout.write(lines)
        sys.stdout.flush()
        _say(f"emulators: up (settings also in {state / 'emulators.env'}); SIGINT or SIGTERM stops them")
        while not stop_requested.wait(1):
            dead = [name for name, s in services.items() if not s.running]
            if dead:
                _say(f"emulators: {', '.join(dead)} stopped unexpectedly; stopping the rest")
                return 1
        return 0
    finally:
        for name, service in services.items():
            try:
                service.stop()
            except EmulatorError as e:
                _say(f"emulators: stopping {name}: {e}")
            service.cleanup()  # only what it made itself; a given --state folder stays
        if temporary:
            shutil.rmtree(state, ignore_errors=True)
        _say("emulators: stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh_platform.emulators", description=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the cloud emulators and print their settings")
    p_up.add_argument("--state", type=Path, help="folder for logs and data (default: a temporary one, removed)")
    p_up.add_argument(
        "--only",
        default=",".join(CLOUD_EMULATORS),
        help=f"comma-separated subset of {','.join(CLOUD_EMULATORS)} (default: all)",
    )
    p_up.add_argument("--postgres", action="store_true", help="also start PostgreSQL 15 (PG* settings)")
    args = parser.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(CLOUD_EMULATORS))
    if unknown:
        parser.error(f"unknown emulator(s): {', '.join(unknown)}")
    return up(args.state, only, args.postgres)


if __name__ == "__main__":
    sys.exit(main())
