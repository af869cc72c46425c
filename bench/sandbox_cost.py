"""What the SQL sandbox costs: the mesh's whole refresh (`mesh materialize --in-process`) on the
same landing data, alternately with the sandbox as shipped and with `sandbox.lock` reduced to
what any connection of the mesh needs (the UTC time zone), in one process, in rotating order.
Prints each run and the medians. The target (issue 9): at most 5% of the refresh at 1M.

    python -m bench.sandbox_cost --customers 1000000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path
from unittest import mock

from mesh_platform import cli, sandbox
from mesh_platform.seed import generate_landing


def _unlocked(con, readable, writable=(), scratch=None) -> None:
    """`sandbox.lock`'s signature, none of its limits."""
    con.execute("SET TimeZone = 'UTC'")


def _refresh(landing: Path, work: Path, sandboxed: bool) -> float:
    """One refresh in a fresh home (a new folder each time: the platform caches catalogs by home)."""
    work.mkdir(parents=True)
    os.environ.update(MESH_HOME=str(work), MESH_LANDING=str(landing), DAGSTER_HOME=str(work / "dagster"))
    start = time.perf_counter()
    with mock.patch.object(sandbox, "lock", sandbox.lock if sandboxed else _unlocked):
        code = cli.main(["materialize", "--in-process", "--allow-volume-drop"])
    elapsed = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    if code != 0:
        raise SystemExit(f"the refresh failed ({'sandboxed' if sandboxed else 'unsandboxed'}), exit {code}")
    return elapsed


def measure(customers: int, rounds: int, root: Path) -> tuple[float, float]:
    """Median refresh seconds (sandboxed, unsandboxed) at `customers`, rounds alternating."""
    for key in [k for k in os.environ if k.startswith("MESH_SOURCE_")]:
        del os.environ[key]
    root = root.resolve()
    shutil.rmtree(root / "work", ignore_errors=True)
    landing = root / f"landing-{customers}"
    if not (landing / ".complete").exists():
        generate_landing(landing, customers=customers, seed=1)
        (landing / ".complete").touch()
    # Unmeasured, on a small landing set: the first refresh of a process pays for imports and
    # Dagster's first set-up.
    small = root / "landing-warm-up"
    if not (small / ".complete").exists():
        generate_landing(small, customers=1_000, seed=1)
        (small / ".complete").touch()
    _refresh(small, root / "work" / "warm-up", True)
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(rounds):
        for sandboxed in ((True, False) if i % 2 == 0 else (False, True)):
            seconds = _refresh(landing, root / "work" / f"{i}-{'on' if sandboxed else 'off'}", sandboxed)
            times[sandboxed].append(seconds)
            print(f"round {i + 1}: {'sandboxed  ' if sandboxed else 'unsandboxed'} {seconds:7.2f} s", flush=True)
    return statistics.median(times[True]), statistics.median(times[False])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(".bench/sandbox"))
    args = parser.parse_args(argv)
    on, off = measure(args.customers, args.rounds, args.dir)
    print(f"median refresh at {args.customers:,} customers: sandboxed {on:.2f} s, unsandboxed {off:.2f} s, "
          f"sandbox cost {100 * (on - off) / off:+.1f}% (target <= +5%)")


if __name__ == "__main__":
    main()
