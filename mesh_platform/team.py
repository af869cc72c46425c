"""The team deployment: each code location its own gRPC code server, and the Dagster instance,
the Iceberg catalog and the grants on one PostgreSQL database.

    workspace-team.yaml   the webserver's and the daemon's workspace: one `grpc_server` per
                          location (host and port), nothing loaded in their own processes
    code servers          `dagster api grpc -f <location's definitions.py>`, one process each,
                          deployed, restarted and upgraded on its own; it also launches the runs
                          of its location (the default run launcher)
    dagster-daemon        the queue (per-domain limits), schedules, sensors, automation, run
                          monitoring
    dagster-webserver     the UI and GraphQL

Every process gets MESH_INSTANCE=postgres and MESH_POSTGRES_URL; MESH_HOME holds the files
they share (table data, landing data, audit log): shared storage when they run on several
machines. `TeamDeployment` starts and stops them on this machine (for `make dev-team` and the
tests), each in its own session, stopped by its own pid; `python -m mesh_platform.team`
is `make dev-team`: a PostgreSQL cluster under MESH_HOME, then everything above, until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from mesh_platform.emulators._process import (
    HOST, EmulatorError, _child_setup, _signal_group, free_port, stop_group, wait_until,
)
from mesh_platform.workspace import ROOT, WORKSPACE, locations

TEAM_WORKSPACE = WORKSPACE.parent / "workspace-team.yaml"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


@dataclass(frozen=True)
class CodeServerSpec:
    """Where a location's code server listens, and the definitions file it serves."""

    location: str
    python_file: Path
    host: str
    port: int


def code_server_specs(team_workspace: Path = TEAM_WORKSPACE, workspace: Path = WORKSPACE) -> list[CodeServerSpec]:
    """The code servers of a `grpc_server` workspace file, each serving the definitions file
    that the python_file workspace (workspace.yaml) names for the same location."""
    files = locations(workspace)
    specs = []
    for entry in yaml.safe_load(team_workspace.read_text())["load_from"]:
        grpc = entry["grpc_server"]
        name = grpc["location_name"]
        if name not in files:
            raise ValueError(f"{team_workspace}: location '{name}' is not in {workspace} ({sorted(files)})")
        specs.append(CodeServerSpec(name, files[name].path, grpc.get("host", HOST), int(grpc["port"])))
    missing = sorted(set(files) - {s.location for s in specs})
    if missing:
        raise ValueError(f"{team_workspace}: no code server for {missing} of {workspace}")
    return specs


def render_workspace(specs: list[CodeServerSpec]) -> str:
    """A workspace file with one `grpc_server` entry per code server."""
    entries = [
        {"grpc_server": {"host": s.host, "port": s.port, "location_name": s.location}} for s in specs
    ]
    return yaml.safe_dump({"load_from": entries}, sort_keys=False)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Process:
    """One server process of the deployment: started in its own session (its process group is
    what it started, runs included), output to a log file, stopped with SIGINT to that group,
    SIGKILL after `stop_grace` seconds."""

    stop_grace = 20.0

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path):
        self.name, self.command, self.env = name, command, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        on_main_thread = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_child_setup(os.getpid() if on_main_thread else None),
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def is_ready(self) -> bool:
        return self.running

    def wait_ready(self, timeout: float = 120) -> float:
        return wait_until(self.is_ready, timeout, self.name, self)

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        return stop_group(proc, self.stop_grace) if proc is not None else None


def stop_all(processes: list[Process], grace: float = Process.stop_grace) -> None:
    """Stop several processes at once: SIGINT to each group, up to `grace` seconds for all of
    them to exit, then SIGKILL to whatever is left of each group."""
    procs = [(p, p.proc) for p in processes if p.proc is not None]
    for p, proc in procs:
        p.proc = None
        _signal_group(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for _, proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for _, proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)  # the group's leftovers (or a leader that hung)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class CodeServer(Process):
    """`dagster api grpc` for one location: ready when its port accepts connections (it binds
    once the location's code has loaded)."""

    def __init__(self, spec: CodeServerSpec, env: dict[str, str], log_dir: Path):
        self.spec = spec
        super().__init__(f"code-server-{spec.location}", [
            _bin("dagster"), "api", "grpc", "-h", spec.host, "-p", str(spec.port),
            "-f", str(spec.python_file), "-d", str(ROOT), "--location-name", spec.location,
        ], env, log_dir)

    def is_ready(self) -> bool:
        return _port_open(self.spec.host, self.spec.port)


class Webserver(Process):
    def __init__(self, workspace: Path, port: int, env: dict[str, str], log_dir: Path, host: str = HOST):
        self.url = f"http://{host}:{port}"
        super().__init__("webserver", [
            _bin("dagster-webserver"), "-w", str(workspace), "-h", host, "-p", str(port),
        ], env, log_dir)

    def is_ready(self) -> bool:
        try:
            return "data" in graphql(self.url, "{ version }", timeout=3, check=False)
        except OSError:
            return False


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60, check: bool = True) -> dict:
    """POST a GraphQL query to a Dagster webserver; its JSON answer (with check: its data)."""
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}/graphql answered {exc.code}: {exc.read()[:2000].decode(errors='replace')}") from None
    if check:
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]
    return body


LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name
        locationOrLoadError { __typename
          ... on RepositoryLocation { repositories { name assetNodes { assetKey { path } } } }
          ... on PythonError { message } } } }
    ... on PythonError { message } } }
"""
RELOAD_LOCATION = """
mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) { __typename
    ... on WorkspaceLocationEntry { name locationOrLoadError { __typename ... on PythonError { message } } }
    ... on PythonError { message } } }
"""
RELOAD_WORKSPACE = """
mutation { reloadWorkspace { __typename ... on PythonError { message } } }
"""
DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""


class TeamDeployment:
    """The code servers, the daemon and the webserver of the team layout on this machine,
    against a PostgreSQL database that already runs (`postgres_url`).

    `state` holds the logs and the generated workspace file; `home` is MESH_HOME, `dagster_home`
    the instance's folder (its dagster.yaml written here, as the mesh writes it)."""

    def __init__(
        self, home: Path, dagster_home: Path, postgres_url: str, state: Path,
        specs: list[CodeServerSpec] | None = None, webserver_port: int | None = None,
        extra_env: dict[str, str] | None = None, base_env: dict[str, str] | None = None,
        code_server_env: dict[str, dict[str, str]] | None = None,
    ):
        self.home, self.dagster_home, self.state = Path(home), Path(dagster_home), Path(state)
        self.postgres_url = postgres_url
        self.specs = {s.location: s for s in (specs or code_server_specs())}
        self.webserver_port = webserver_port or free_port()
        self.env = {
            **(os.environ if base_env is None else base_env), **(extra_env or {}),
            "MESH_HOME": str(self.home), "DAGSTER_HOME": str(self.dagster_home),
            "MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": postgres_url,
        }
        self.code_server_env = dict(code_server_env or {})  # per location, on top of env
        self.workspace = self.state / "workspace-team.yaml"
        self.code_servers: dict[str, CodeServer] = {}
        self.daemon: Process | None = None
        self.webserver: Webserver | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts: list[str] = []  # names of the processes the supervisor started again

    @property
    def url(self) -> str:
        return self.webserver.url

    @property
    def processes(self) -> list[Process]:
        return [p for p in [self.webserver, self.daemon, *self.code_servers.values()] if p is not None]

    def settings(self):
        from mesh_platform.deployment import Settings

        return Settings.from_env(self.env)

    # -- life cycle -------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> float:
        """Everything up: code servers first (the webserver and the daemon load the workspace
        when they start), then the daemon and the webserver. Seconds taken."""
        from mesh_platform.runs import write_instance_config

        began = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.workspace.write_text(render_workspace(list(self.specs.values())))
        write_instance_config(self.dagster_home, self.settings())
        busy = [f"{s.location} ({s.host}:{s.port})" for s in self.specs.values() if _port_open(s.host, s.port)]
        if busy:
            raise EmulatorError(f"code server ports already in use: {', '.join(busy)}")
        try:
            for spec in self.specs.values():
                env = {**self.env, **self.code_server_env.get(spec.location, {})}
                self.code_servers[spec.location] = CodeServer(spec, env, self.state).start()
            for server in self.code_servers.values():
                server.wait_ready(timeout)
            self.daemon = Process("daemon", [_bin("dagster-daemon"), "run", "-w", str(self.workspace)],
                                  self.env, self.state).start()
            self.webserver = Webserver(self.workspace, self.webserver_port, self.env, self.state).start()
            self.webserver.wait_ready(timeout)
            self.wait_locations_loaded(timeout)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - began

    def stop(self) -> None:
        """Everything at once: the webserver, the daemon, the code servers and the runs they
        launched (in their process groups). Idempotent."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        stop_all(self.processes)

    def supervise(self, interval: float = 1.0) -> None:
        """From now on, start again any process of the deployment that exits (the daemon gives
        up when its database is unreachable for long): what Kubernetes does for a pod."""
        def watch():
            while not self._stopping.wait(interval):
                for process in self.processes:
                    if process.proc is not None and process.proc.poll() is not None:
                        code = process.proc.returncode
                        self.restarts.append(process.name)
                        _say(f"{process.name} exited ({code}); starting it again. Its log: {process.log_path}")
                        process.start()

        self._stopping.clear()
        self._supervisor = threading.Thread(target=watch, name="team-supervisor", daemon=True)
        self._supervisor.start()

    def stop_code_server(self, location: str) -> None:
        self.code_servers[location].stop()

    def start_code_server(self, location: str, python_file: Path | None = None,
                          extra_env: dict[str, str] | None = None, timeout: float = 120) -> CodeServer:
        """(Re)start a location's code server, serving `python_file` (a new version of the
        location's code) if given, with `extra_env` (instead of its earlier extra settings) if
        given; the others keep serving. The webserver shows the change once
        the location is reloaded (`reload_location`)."""
        old = self.code_servers.get(location)
        if old is not None:
            old.stop()  # also while the supervisor watches: it leaves a stopped process alone
        spec = self.specs[location]
        if python_file is not None:
            spec = self.specs[location] = CodeServerSpec(location, Path(python_file), spec.host, spec.port)
        if extra_env is not None:
            self.code_server_env[location] = extra_env
        server = CodeServer(spec, {**self.env, **self.code_server_env.get(location, {})}, self.state)
        self.code_servers[location] = server.start()
        server.wait_ready(timeout)
        return server

    def __enter__(self) -> TeamDeployment:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- GraphQL ----------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)

    def location_entries(self) -> dict[str, dict]:
        """name -> locationOrLoadError (None while loading)."""
        data = self.graphql(LOCATIONS_QUERY)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            raise RuntimeError(f"workspace: {data}")
        return {e["name"]: e["locationOrLoadError"] for e in data["locationEntries"]}

    def wait_locations_loaded(self, timeout: float = 120) -> dict[str, dict]:
        def loaded():
            entries = self.location_entries()
            return all(v is not None for v in entries.values()) and entries

        wait_until(loaded, timeout, "the workspace's locations", self.webserver)
        return self.location_entries()

    def reload_location(self, location: str) -> dict:
        return self.graphql(RELOAD_LOCATION, {"name": location})["reloadRepositoryLocation"]

    def reload_workspace(self) -> dict:
        return self.graphql(RELOAD_WORKSPACE)["reloadWorkspace"]

    def daemons_healthy(self) -> dict[str, bool]:
        statuses = self.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return {s["daemonType"]: s["healthy"] for s in statuses if s["required"]}

    def launch(self, location: str, job: str | None = None, tags: dict[str, str] | None = None) -> str:
        """Submit a run of a location's job (default: every product of it) as the UI does: it is
        queued, and the daemon launches it when the limits allow. Its run id."""
        from mesh_platform.ui_launch import RunningUI

        return RunningUI(self.webserver_port, self.webserver.pid).launch(location, tags=tags, job=job)


# -- `make dev-team` ----------------------------------------------------------------------------

def _landing_job(location: str) -> str | None:
    """The job of a location's daily schedule: `<location>_products` when no product of it reads
    another product, `<location>_scheduled` when some do; None when all do (the federation)."""
    from mesh_platform.registry import location_entries

    entries = location_entries(locations()[location].path.parent, location).values()
    from_landing = [e for e in entries if not e.inputs]
    if not from_landing:
        return None
    return f"{location}_products" if len(from_landing) == len(entries) else f"{location}_scheduled"


def dev(port: int, postgres_port: int, customers: int) -> int:
    """A PostgreSQL cluster under MESH_HOME, the code servers of workspace-team.yaml, the daemon
    and the webserver, until SIGINT/SIGTERM/SIGHUP; then everything stopped, PostgreSQL last."""
    from mesh_platform.deployment import Settings
    from mesh_platform.emulators import Postgres

    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    # Also when started in the background, where SIGINT comes in ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)

    settings = Settings.from_env()
    began = time.monotonic()
    postgres = Postgres(state_dir=settings.home, port=postgres_port if postgres_port else None)
    team = None
    try:
        _say(f"PostgreSQL 15: cluster in {settings.home / 'postgres'} ...")
        postgres.start()
        _say(f"  {postgres.url} (loopback only; up in {postgres.start_seconds:.1f}s)")
        if not any((settings.landing / d).exists() for d in ("customer", "orders", "preferences")):
            from mesh_platform.seed import generate_landing

            _say(f"seeding {customers:,} customers into {settings.landing} ...")
            generate_landing(settings.landing, customers, 7)
        team = TeamDeployment(
            settings.home, settings.dagster_home, postgres.url, settings.home / "servers",
            specs=code_server_specs(), webserver_port=port,
        )
        _say(f"code servers ({', '.join(f'{s.location}:{s.port}' for s in team.specs.values())}), "
             "daemon and webserver ...")
        team.start()
        _say(f"team set-up up in {time.monotonic() - began:.1f}s: Dagster UI on {team.url} "
             f"(logs in {team.state}; Ctrl-C stops everything)")
        if _nothing_published(settings, postgres.url):
            # The products built from landing data (what each daily schedule runs); automation
            # builds those read from other products (insights, customer_360) once they publish.
            for location in team.specs:
                job = _landing_job(location)
                if job:
                    run_id = team.launch(location, job)
                    _say(f"  queued {job}: run {run_id[:8]}")
        team.supervise()  # a server that dies is started again, as an orchestrator would
        while not stop.wait(1):
            pass
        return 0
    except EmulatorError as exc:
        _say(f"mesh dev-team: {exc}")
        return 1
    finally:
        _say("stopping the webserver, the daemon, the code servers and PostgreSQL ...")
        if team is not None:
            team.stop()
        postgres.stop()
        _say("stopped")


def _nothing_published(settings, url: str) -> bool:
    from mesh_platform.places import local_catalog

    try:
        return not local_catalog(str(settings.home), url).tables()
    except Exception:  # noqa: BLE001 - a catalog not created yet
        return True


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mesh_platform.team", description=dev.__doc__)
    parser.add_argument("--port", type=int, default=3000, help="the webserver's port (default 3000)")
    parser.add_argument("--postgres-port", type=int, default=0, help="PostgreSQL's port (default: a free one)")
    parser.add_argument("--customers", type=int, default=10_000, help="customers to seed when there is no landing data")
    args = parser.parse_args(argv)
    return dev(args.port, args.postgres_port, args.customers)


if __name__ == "__main__":
    sys.exit(main())
