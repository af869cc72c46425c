"""The customer domain's code location: its contracts, sources and products, in this folder."""

from pathlib import Path

import dagster as dg

from mesh_platform.location import location_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return location_definitions(Path(__file__).parent)
