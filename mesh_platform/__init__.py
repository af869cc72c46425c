"""mesh: the shared platform of the data mesh."""

from mesh_platform.products import product

__all__ = ["product"]
