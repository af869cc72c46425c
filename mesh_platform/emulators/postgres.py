"""PostgreSQL 15 from the Debian server binaries: a throw-away cluster on 127.0.0.1.

`initdb` once into `state_dir/postgres/data`, then `pg_ctl -w start`. The server refuses to
run as root, so under root the cluster belongs to a system user (`postgres` when it exists,
else `mesh-pg`, created on first use). Trust authentication on loopback: a local harness only.

`stop()` then `start()` resumes on the same data folder and port (a PostgreSQL outage in the
middle of a run); `cleanup()` removes the cluster.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ._process import HOST, EmulatorError, Service, SideEnvironmentMissing, children_of, pid_alive

BINDIR = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "mesh-pg"  # created when running as root on a machine without a `postgres` user


def _server_user() -> pwd.struct_passwd | None:
    """The OS user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SYSTEM_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SYSTEM_USER)


def _can_traverse(user: pwd.struct_passwd, folder: Path) -> bool:
    """Whether `user` may reach `folder` (x on it and on every folder above)."""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for f in [folder, *folder.parents]:
        st = f.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


class Postgres(Service):
    """A PostgreSQL 15 cluster with one database, `url` for SQLAlchemy + psycopg2."""

    name = "postgres"
    ready_timeout = 60

    def __init__(self, state_dir=None, port=None, user: str = "mesh", database: str = "mesh", bindir=BINDIR):
        super().__init__(state_dir, port)
        self.user = user
        self.database = database
        self.bindir = Path(bindir)
        self.base_dir: Path | None = None  # holds data/, the socket folder and the log
        self._own_base = False
        self.pid: int | None = None  # the postmaster's pid while it runs
        self._os_user: pwd.struct_passwd | None = None

    # -- paths and addresses ----------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg2 driver)."""
        return f"postgresql+psycopg2://{self.user}@{HOST}:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """libpq URL (psql, psycopg2.connect)."""
        return f"postgresql://{self.user}@{HOST}:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        return {"PGHOST": HOST, "PGPORT": str(self.port), "PGUSER": self.user, "PGDATABASE": self.database}

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except (OSError, TypeError):
            return ""

    @property
    def running(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    # -- life cycle -------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        exe = self.bindir / name
        if not exe.exists():
            raise SideEnvironmentMissing(
                f"{exe} is missing: install the PostgreSQL 15 server (Debian: apt-get install -y postgresql-15)"
            )
        return str(exe)

    def _prepare_base(self) -> None:
        if self.base_dir is not None:
            return
        self._os_user = _server_user()
        base = self.state_dir / "postgres"
        # The socket path must fit in 107 bytes; the server user must reach the folder.
        too_long = len(str(base / "sock" / ".s.PGSQL.65535")) > 100
        if too_long or (self._os_user is not None and not _can_traverse(self._os_user, self.state_dir)):
            base = Path(tempfile.mkdtemp(prefix="mesh-pg-"))
            self._own_base = True
        base.mkdir(parents=True, exist_ok=True)
        self.base_dir = base
        self.socket_dir.mkdir(exist_ok=True)
        if self._os_user is not None:
            for p in (base, self.socket_dir):
                os.chown(p, self._os_user.pw_uid, self._os_user.pw_gid)
            base.chmod(0o700)

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {}
        if self._os_user is not None:
            kwargs = dict(user=self._os_user.pw_uid, group=self._os_user.pw_gid, extra_groups=[])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        done = subprocess.run(
            args,
            cwd=self.base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            **kwargs,
        )
        if done.returncode != 0:
            raise EmulatorError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{self.log()}"
            )
        return done

    def _start(self) -> None:
        self._prepare_base()
        first = not (self.data_dir / "PG_VERSION").exists()
        self._stop_stale_server()
        if first:
            self._run([
                self._bin("initdb"), "-D", str(self.data_dir), "-U", self.user,
                "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ])  # fmt: skip
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={HOST} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        self._run([
            self._bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
            "-w", "-t", str(self.ready_timeout), "-o", options, "start",
        ], timeout=self.ready_timeout + 10)  # fmt: skip
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        if first:
            self._run([self._bin("createdb"), "-h", HOST, "-p", str(self.port), "-U", self.user, self.database])

    def _stop_stale_server(self) -> None:
        """A server still running on this data folder, left by a process that was killed before
        it could stop it (a kept state_dir): stopped, so that this start can take it over."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as f:  # that pid may be someone else's by now
                ours = str(self.data_dir).encode() in f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if ours and pid_alive(pid):
            self.pid = pid
            self._stop()

    def _stop(self) -> None:
        pid, self.pid = self.pid, None
        if pid is None or not pid_alive(pid):
            return
        workers = children_of(pid)
        try:
            self._run([self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "20", "-m", "fast", "stop"], 30)
        except (EmulatorError, subprocess.TimeoutExpired):
            pass
        # pg_ctl returns once postmaster.pid is gone: wait for the processes themselves.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in [pid, *workers]):
            time.sleep(0.05)
        for p in [pid, *workers]:
            if pid_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def cleanup(self) -> None:
        super().cleanup()
        if self._own_base and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self._own_base = False
