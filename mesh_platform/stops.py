"""A stop (Ctrl-C, SIGTERM, a run terminated in the UI, which Dagster turns into a SIGINT) ends a
step's DuckDB work at once, and the step ends as stopped.

DuckDB's Python client runs a signal's Python handler only when its calling thread looks for
one, between pieces of work, and with two threads it may not look until the query ends: a step
scanning 10^12 rows had not stopped 30 s after a Ctrl-C (tests/faults/test_stop_during_query.py),
history at 10M customers went on for 8.5 s. And when the handler raises (Dagster's
DagsterExecutionInterruptedError), DuckDB drops that exception for RuntimeError('Query
interrupted'), which Dagster records as the step's failure, not as a stop.

So while a step's connection is open, a thread waits on the signal wake-up socket
(signal.set_wakeup_fd: written by the C-level handler at once, on whichever thread the kernel
picked) and interrupts the connection on SIGINT or SIGTERM. Whatever the block then raises
(DuckDB's interruption, or an error a check or a product made of it), or if it ends as though
nothing happened (product code that caught DuckDB's error), it leaves as Dagster's
DagsterExecutionInterruptedError.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator

import dagster as dg
import duckdb

STOPS = (signal.SIGINT, signal.SIGTERM)  # a run maps SIGTERM to its SIGINT handler
_END = 0  # no signal has this number: the block has ended

_sockets: tuple[int, socket.socket, socket.socket] | None = None


def is_stop(exc: BaseException) -> bool:
    """Whether DuckDB raised `exc` because its query was interrupted: by `interrupt()`, or by a
    signal's handler raising while it ran."""
    return isinstance(exc, duckdb.InterruptException) or (
        type(exc) is RuntimeError and str(exc) == "Query interrupted")


@contextlib.contextmanager
def stoppable(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers, and so stops, belong to the main thread
        return
    read, write = _wakeup_sockets()
    _drain(read)
    seen = threading.Event()
    watcher = threading.Thread(target=_watch, args=(read, con, seen), name="mesh-stop", daemon=True)
    previous = signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
    stopped = False
    try:
        watcher.start()
        yield
    except Exception as exc:
        if not (seen.is_set() or is_stop(exc)):
            raise
        stopped = True
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):  # full of signals: the watcher has ended
            write.send(bytes([_END]))
        watcher.join()
    if stopped or seen.is_set():
        raise dg.DagsterExecutionInterruptedError("stopped during its DuckDB work")


def _wakeup_sockets() -> tuple[socket.socket, socket.socket]:
    """This process's pair, made once and closed only as the interpreter exits: a handler raising
    in the middle of a block's ending may leave the wake-up fd set to it, and a closed socket's
    number could be reused by a file that a later signal would then write into. A fork makes its
    own."""
    global _sockets
    if _sockets is None or _sockets[0] != os.getpid():
        read, write = socket.socketpair()
        write.setblocking(False)  # set_wakeup_fd requires it
        _sockets = (os.getpid(), read, write)
        atexit.register(_close, read, write)
    return _sockets[1], _sockets[2]


def _close(read: socket.socket, write: socket.socket) -> None:
    """At the interpreter's exit: the wake-up fd let go of first, so that no signal writes to them."""
    previous = signal.set_wakeup_fd(-1)
    if previous != write.fileno():
        signal.set_wakeup_fd(previous)  # not ours
    read.close()
    write.close()


def _drain(read: socket.socket) -> None:
    """Forget what earlier blocks left: signals that came after their watcher ended, their end."""
    read.setblocking(False)
    try:
        while read.recv(4096):
            pass
    except BlockingIOError:
        pass
    finally:
        read.setblocking(True)


def _watch(read: socket.socket, con: duckdb.DuckDBPyConnection, seen: threading.Event) -> None:
    while True:
        for number in read.recv(64):
            if number == _END:
                return
            if number in STOPS:
                seen.set()
                con.interrupt()
                return
