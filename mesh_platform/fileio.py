"""Iceberg file locations relative to the mesh home, so that a home can be copied, moved and
restored from a backup.

Iceberg writes every file's full location into its metadata. With plain `file:///...` paths a
copied home would go on writing into the original, and a moved one would find nothing. Local
tables therefore live at `mesh:///warehouse/...`, and this FileIO resolves `mesh:///` against
the home the catalog was opened with. Other schemes (s3://, abfs://, an old home's file://)
pass through unchanged.
"""

from __future__ import annotations

import functools
import os
from urllib.parse import urlparse

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


def __getattr__(name: str):
    # pyiceberg loads the FileIO by name (`py-io-impl`) when a catalog opens a table. Its pyarrow
    # module takes half a second to import, which a code location's load must not pay: the class
    # is made on first use.
    if name == "MeshFileIO":
        return _mesh_file_io()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _mesh_file_io() -> type:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    class MeshFileIO(PyArrowFileIO):
        @staticmethod
        def parse_location(location: str, properties=None) -> tuple[str, str, str]:
            if location.startswith(f"{SCHEME}:"):
                return "file", "", local_path(location, properties[HOME_PROPERTY])
            return PyArrowFileIO.parse_location(location, properties or {})

    MeshFileIO.__module__ = __name__
    return MeshFileIO
