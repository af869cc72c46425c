"""Iceberg file locations relative to the mesh home, so that a home can be copied, moved and
restored from a backup.

Iceberg writes every file's full location into its metadata. With plain `file:///...` paths a
copied home would go on writing into the original, and a moved one would find nothing. Local
tables therefore live at `mesh:///warehouse/...`, and this FileIO resolves `mesh:///` against
the home the catalog was opened with. Other schemes (s3://, abfs://, an old home's file://)
pass through unchanged.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from pyiceberg.io.pyarrow import PyArrowFileIO

SCHEME = "mesh"
HOME_PROPERTY = "mesh.home"


def uri(relative: str) -> str:
    """The location-independent URI of a path relative to the mesh home."""
    return f"{SCHEME}:///{relative.lstrip('/')}"


def local_path(location: str, home: str) -> str:
    """A location as a path on this machine (for DuckDB), given the home it is relative to."""
    parsed = urlparse(location)
    if parsed.scheme == SCHEME:
        return os.path.join(home, parsed.path.lstrip("/"))
    if parsed.scheme in ("file", ""):
        return parsed.path
    return location


class MeshFileIO(PyArrowFileIO):
    @staticmethod
    def parse_location(location: str, properties=None) -> tuple[str, str, str]:
        if location.startswith(f"{SCHEME}:"):
            return "file", "", local_path(location, properties[HOME_PROPERTY])
        return PyArrowFileIO.parse_location(location, properties or {})
