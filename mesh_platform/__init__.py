"""mesh: the shared platform of the data mesh. A product file needs only `product`."""

from mesh_platform.spec import product

__all__ = ["product"]
