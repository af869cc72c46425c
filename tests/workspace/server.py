"""A real Dagster server process (`dagster-webserver`, `dagster dev`, or `mesh ui`, which runs
`dagster dev`) on 127.0.0.1, for tests.

Started in its own session (so its process group is exactly what it started), with MESH_HOME
and DAGSTER_HOME in a temporary folder; stopped with SIGINT to that process group, as Ctrl-C
in a terminal would, falling back to SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mesh_platform.runs import write_instance_config

ROOT = Path(__file__).resolve().parents[2]
# Measured: `mesh ui`'s GraphQL answers ~30 s after start on an idle 2-core machine, ~110 s at load 8.
READY_WITHIN = 180
# Measured: SIGINT stops everything in ~4 s idle, 15-17 s at load 8 (dagster dev waits for its
# webserver and daemon, then its code servers).
STOP_WITHIN = 30
BIN = Path(sys.executable).parent  # the environment running the tests

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message className causes { message className } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path) -> dict[str, str]:
    """This process's environment without any MESH_* setting, with the mesh and the Dagster
    instance in `home` (configured as the mesh configures it: telemetry off, so nothing leaves
    the machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    dagster_home = home / "dagster"
    write_instance_config(dagster_home)  # the instance the mesh itself creates
    env.update(MESH_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    return env


@dataclass
class DagsterServer:
    args: list[str]  # after the executable name, without -h/-p
    home: Path  # MESH_HOME; DAGSTER_HOME is home/dagster
    executable: str = "dagster-webserver"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    stop_seconds: float | None = None  # how long the SIGINT stop took
    killed: bool = False  # True when SIGINT was not enough
    env: dict[str, str] = field(default_factory=dict)  # on top of server_env's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.executable}-{self.port}.log"

    def start(self) -> "DagsterServer":
        env = server_env(self.home) | self.env
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(BIN / self.executable), *self.args, *self._address()],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # A runner started in the background (as CI may be) ignores SIGINT, and children
            # inherit that: give the server the default disposition, as a terminal would.
            preexec_fn=_default_sigint,
        )
        return self

    def _address(self) -> list[str]:
        return ["--port", str(self.port)] if self.executable == "mesh" else ["-h", "127.0.0.1", "-p", str(self.port)]

    def log(self, tail: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace")[-tail:]
        ui_log = self.home / "logs" / "ui.log"  # `mesh ui`'s dagster dev
        if self.executable == "mesh" and ui_log.exists():
            text += f"\n--- {ui_log}:\n" + ui_log.read_text(errors="replace")[-tail:]
        return text

    def wait_ready(self, timeout: float = 90) -> float:
        """Until GraphQL answers; returns the seconds it took. Fails early if the process dies."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.executable} exited with {self.proc.returncode} before serving:\n{self.log()}"
                )
            try:
                r = requests.post(f"{self.url}/graphql", json={"query": "{ version }"}, timeout=5)
                if r.status_code == 200 and "data" in r.json():
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.executable} did not answer GraphQL within {timeout}s:\n{self.log()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        r = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        r.raise_for_status()
        body = r.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def location_entries(self, timeout: float = 90) -> dict[str, dict]:
        """name -> locationOrLoadError, once no location is still loading."""
        start = time.monotonic()
        while True:
            data = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            assert data["__typename"] == "Workspace", data
            entries = {e["name"]: e["locationOrLoadError"] for e in data["locationEntries"]}
            if all(v is not None for v in entries.values()) or time.monotonic() - start > timeout:
                return entries
            time.sleep(1)

    def descendants(self) -> list:
        """The processes the server started so far (psutil.Process objects)."""
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, grace: float = 15) -> int:
        """SIGINT to the process group; SIGKILL to it after `grace` seconds. Returns the exit code."""
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        start = time.monotonic()
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.exit_code = self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.killed = True
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.exit_code = self.proc.wait(timeout=10)
        except ProcessLookupError:
            self.exit_code = self.proc.wait(timeout=10)
        self.stop_seconds = time.monotonic() - start
        self._log.close()
        return self.exit_code

    def kill_leftovers(self) -> None:
        """Last resort after a failed test: SIGKILL whatever is left of the process group, and
        any process of this server's Dagster home (`mesh ui` starts dagster dev in a session of
        its own)."""
        import psutil

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for p in psutil.process_iter():
            try:
                if p.pid != os.getpid() and p.environ().get("DAGSTER_HOME") == str(self.dagster_home):
                    p.kill()
            except (psutil.Error, OSError):
                pass


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def leftovers(identities, dagster_home: str, port: str, within: float = 10) -> list[str]:
    """Processes still alive `within` seconds after dagster dev stopped (children may take a moment
    longer than their parent to finish exiting) that it started: its recorded descendants, and any
    process whose environment has our temporary DAGSTER_HOME or whose command line our port."""
    deadline = time.monotonic() + within
    while (found := _alive(identities, dagster_home, port)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def _alive(identities, dagster_home: str, port: str) -> list[str]:
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status", "create_time"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(p.info["cmdline"] or [])
            ours = (p.pid, p.info["create_time"]) in identities
            if not ours:
                try:
                    ours = p.environ().get("DAGSTER_HOME") == dagster_home
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            if not ours:
                ours = f"-p {port}" in cmdline or f"--port {port}" in cmdline
            if ours:
                found.append(f"{p.pid}: {cmdline}")
        except psutil.NoSuchProcess:
            continue
    return found
