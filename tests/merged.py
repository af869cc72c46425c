"""The code locations as one Definitions, as the daemon sees one deployment: for evaluating
automation across locations in a test."""

from __future__ import annotations

import dagster as dg


def deployment(defs: dict[str, dg.Definitions]) -> dg.Definitions:
    """Definitions.merge refuses the locations (each binds its own `mesh` resource, with its own
    consumer), so each location's resources are bound to its own assets instead; the asset
    checks travel with their assets. Only the automation sensors come along: the landing sensors
    run their locations' jobs, with their resources."""
    assets, sensors = [], []
    for d in defs.values():
        specs = [a for a in d.assets if isinstance(a, dg.AssetSpec)]
        computed = [a for a in d.assets if isinstance(a, dg.AssetsDefinition)]
        assert len(specs) + len(computed) == len(d.assets)
        assets += [*specs, *dg.with_resources(computed, d.resources)]
        sensors += [s for s in d.sensors if isinstance(s, dg.AutomationConditionSensorDefinition)]
    return dg.Definitions(assets=assets, sensors=sensors)
