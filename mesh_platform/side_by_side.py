"""Several independent jobs at once, each in a fork of this process, for `mesh materialize`
without a UI: the runs of locations that read nothing of each other.

A fork starts with everything this process has imported (Dagster, its storage, the locations,
pyiceberg, DuckDB): a new process would import them again, seconds on two cores, which is why
runs in a row in one process were the faster way so far. Each fork executes its job, sends its
result back through a pipe and leaves with os._exit: nothing of this process's (atexit, buffers)
runs twice.

Stopping: each fork has a process group of its own, so a Ctrl-C reaches this process alone,
which passes a SIGINT on to every fork still running: Dagster ends each run as stopped, and the
refresh reports it, as it does a run stopped in this process. When this process is killed
outright, the kernel sends its forks SIGTERM (Linux), on which Dagster ends their runs too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


class JobFailed(Exception):
    """A job raised (or its fork ended without a result): what it was, never its traceback."""


def run(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each job's result, by name, or a JobFailed in its place. Call only from the main thread
    of a process that runs no other thread: a fork copies only the thread that forks."""
    parent = os.getpid()
    forks: dict[str, tuple[int, int]] = {}
    running: set[int] = set()
    try:
        for name, job in jobs.items():
            read_end, write_end = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                _child(job, write_end, parent)  # never returns
            os.close(write_end)
            forks[name] = (pid, read_end)
            running.add(pid)
            with contextlib.suppress(OSError):  # the fork does it too; whichever comes first
                os.setpgid(pid, pid)
    except BaseException:  # a Ctrl-C while forking: the forks made so far stop too
        _forward(running)
        for pid in running:
            os.waitpid(pid, 0)
        raise

    # A stop while the jobs run goes on to them, once each time, and their results (a run ended
    # as stopped, as Dagster ends one) are still collected: the handler returns, so the reads
    # below resume instead of raising.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _forward(running))
    try:
        results: dict[str, Any] = {}
        for name, (pid, read_end) in forks.items():
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            # No SIGINT between the wait and the discard: the handler would signal a pid that is
            # no longer this fork's (the fork has closed its pipe, so the wait is short).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                _, status = os.waitpid(pid, 0)
                running.discard(pid)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            results[name] = pickle.loads(data) if data else JobFailed(
                f"its process ended without a result ({_ended(status)})")
        return results
    finally:
        signal.signal(signal.SIGINT, previous)


def _child(job: Callable[[], Any], write_end: int, parent: int) -> None:
    code = 0
    try:
        # A process group of its own: the terminal's Ctrl-C reaches the parent alone, which
        # passes it on once (two would break Dagster's ending of the run).
        os.setpgid(0, 0)
        _die_with(parent)
        try:
            result: Any = job()
        except BaseException as exc:
            result, code = JobFailed(f"{type(exc).__name__}: {exc}"), 1
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(result, pipe)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """SIGTERM to this fork when its parent dies, however it dies (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _forward(running: set[int]) -> None:
    """SIGINT to every fork not yet waited for (so each pid is still its own; one that has
    ended but is not yet waited for takes it harmlessly)."""
    for pid in running:
        os.kill(pid, signal.SIGINT)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
