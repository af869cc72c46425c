"""What every emulator shares: the repository root, free loopback ports, readiness polling,
and a server process started in its own session and stopped by its own pid.

Standard library only: importing an emulator class costs nothing; client libraries (boto3,
google-cloud-bigquery, azure-storage-blob) are imported inside the methods that use them.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"

# Services started in this interpreter and not stopped yet: stopped at exit, so a caller that
# forgets (or dies on an exception outside a `with`) leaves no servers behind.
_RUNNING: set["Service"] = set()


class EmulatorError(RuntimeError):
    """An emulator could not be started or stopped."""


class SideEnvironmentMissing(EmulatorError):
    """An emulator's own environment (a side venv, node_modules, a system package) is missing."""


def repo_root() -> Path:
    """The repository root: the folder holding workspace.yaml, above this file."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "workspace.yaml").is_file():
            return folder
    raise EmulatorError(f"no workspace.yaml above {here}: cannot find the repository root")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# Loopback requests must never go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, method: str = "GET", timeout: float = 2) -> int | None:
    """The HTTP status `url` answers with (errors included), or None when nothing answers."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc; no psutil in the platform's dependencies)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


class Service:
    """A local stand-in for a cloud service: `start()`, `stop()`, a context manager, `env()`.

    State (logs, data, a private HOME) lives in `state_dir`: the folder given, or a temporary
    one removed by `cleanup()` (and on leaving the `with` block).
    """

    name = "service"

    def __init__(self, state_dir: str | os.PathLike | None = None, port: int | None = None):
        self._given_state = Path(state_dir) if state_dir is not None else None
        self.state_dir: Path | None = None
        self._own_state = False
        self.port = port
        self.start_seconds: float | None = None  # how long the last start() took, until ready

    # -- what subclasses provide ------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The standard SDK settings that point clients at this service."""
        raise NotImplementedError

    # -- the common life cycle --------------------------------------------------------------
    def _prepare_state(self) -> Path:
        if self.state_dir is None:
            if self._given_state is not None:
                self._given_state.mkdir(parents=True, exist_ok=True)
                self.state_dir = self._given_state.resolve()
            else:
                self.state_dir = Path(tempfile.mkdtemp(prefix=f"mesh-{self.name}-"))
                self._own_state = True
        return self.state_dir

    def start(self) -> Self:
        if self.running:
            return self
        began = time.monotonic()
        self._prepare_state()
        if self.port is None:
            self.port = free_port()
        _RUNNING.add(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the service (idempotent). State stays, so `start()` again resumes on it."""
        try:
            self._stop()
        finally:
            _RUNNING.discard(self)

    def cleanup(self) -> None:
        """Remove the temporary state folder this object created (not a folder it was given)."""
        if self.running:
            self.stop()
        if self._own_state and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None
            self._own_state = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {state} port={self.port}>"


class ProcessService(Service):
    """A service that is one server process: started in its own session (its process group is
    exactly what it started), polled until ready, stopped with SIGINT to that group and SIGKILL
    after `stop_grace` seconds."""

    ready_timeout = 60.0
    stop_grace = 10.0

    def __init__(self, state_dir=None, port=None):
        super().__init__(state_dir, port)
        self.proc: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def process_env(self) -> dict[str, str]:
        return dict(os.environ)

    def is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except (OSError, TypeError):
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _start(self) -> None:
        self._log = open(self.log_path, "ab")
        # Started from the main thread, the server also dies with this process if it is killed
        # outright (SIGKILL leaves no chance to stop it). Not from another thread: the signal
        # would come when that thread ends.
        on_main_thread = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.state_dir,
            env=self.process_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid() if on_main_thread else None),
        )
        wait_until(self.is_ready, self.ready_timeout, f"{self.name} on port {self.port}", self)

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, self.stop_grace)
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_until(check: Callable[[], bool], timeout: float, what: str, service=None) -> float:
    """Poll `check` until it is true; seconds taken. Fails early when the service's process
    exits, with the end of its log."""
    began = time.monotonic()
    delay = 0.05
    while True:
        proc = getattr(service, "proc", None)
        if proc is not None and proc.poll() is not None:
            raise EmulatorError(
                f"{what} exited with {proc.returncode} before it was ready:\n{service.log()}"
            )
        if check():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            log = service.log() if service is not None else ""
            raise EmulatorError(f"{what} was not ready within {timeout:.0f} s:\n{log}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def stop_group(proc: subprocess.Popen, grace: float) -> int:
    """SIGINT to the process group led by `proc`; SIGKILL to what is left after `grace`
    seconds. Returns the exit code."""
    pgid = proc.pid  # session leader: its process group id is its pid
    _signal_group(pgid, signal.SIGINT)
    try:
        code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        code = proc.wait(timeout=10)
    # Anything the leader started in its group and left behind goes too.
    _signal_group(pgid, signal.SIGKILL)
    return code


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int | None) -> Callable[[], None]:
    """What the server process does before exec: the default SIGINT disposition (a runner
    started in the background ignores SIGINT and children inherit that), and, given the
    parent's pid, SIGKILL when that parent dies (Linux)."""
    prctl = None
    if parent is not None:
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return setup


@atexit.register
def _stop_forgotten() -> None:
    for service in list(_RUNNING):
        try:
            service.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
