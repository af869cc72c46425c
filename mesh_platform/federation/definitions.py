"""The federation code location, owned by the platform team: products built across domains,
and what the platform runs for the whole mesh (maintenance, the run monitor).

It reads the domains' products only through the catalog (their published Iceberg snapshots
and access grants); it imports no domain code.
"""

from pathlib import Path

import dagster as dg

from mesh_platform.location import location_definitions
from mesh_platform.platform_defs import platform_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(location_definitions(Path(__file__).parent), platform_definitions())
