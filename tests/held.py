"""A real `mesh` command held at a fault point (mesh_platform.faults) until the test lets it go:
a run that is, for as long as the test needs, in progress."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

MESH = str(Path(sys.executable).with_name("mesh"))
ROOT = Path(__file__).resolve().parent.parent


def mesh_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without MESH_*/DAGSTER_* settings, with MESH_HOME `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_"))}
    return env | {"MESH_HOME": str(home), **extra}


class Held:
    def __init__(self, home: Path, folder: Path, *args: str, at: str = "compute", **extra: str):
        self.ready, self.resume = folder / f"held-{at}.ready", folder / f"held-{at}.resume"
        env = mesh_env(home, MESH_FAULTPOINT=at, MESH_FAULTPOINT_READY=str(self.ready),
                       MESH_FAULTPOINT_RESUME=str(self.resume), **extra)
        self.proc = subprocess.Popen([MESH, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            assert self.proc.poll() is None, f"mesh {' '.join(args)} ended before {at}:\n{self.proc.stdout.read()}"
            assert time.monotonic() < deadline, f"mesh {' '.join(args)} did not reach {at} in 120 s"
            time.sleep(0.1)

    def release(self) -> tuple[int, str]:
        """Let it go on; its exit code and output."""
        self.resume.touch()
        out, _ = self.proc.communicate(timeout=120)
        return self.proc.returncode, out
