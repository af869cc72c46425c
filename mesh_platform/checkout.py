"""Which checkout of the project a command works in: the nearest folder, from the working
directory up, holding a workspace.yaml and a domains/ folder; else the one this package is in.
A leaf module (no Dagster), read by `mesh seed` too.

So `mesh` works from any directory of a checkout, and a second checkout (a team's fork, a test's
copy) uses its own workspace and, unless MESH_HOME says otherwise, its own `.mesh`."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def find_root(start: Path | None = None) -> Path:
    """MESH_WORKSPACE's folder if set, else the checkout around `start` (default: the working
    directory), else the package's."""
    if os.environ.get("MESH_WORKSPACE"):
        return Path(os.environ["MESH_WORKSPACE"]).resolve().parent
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "workspace.yaml").is_file() and (folder / "domains").is_dir():
            return folder
    return PACKAGE_ROOT
