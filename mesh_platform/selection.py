"""`mesh materialize --select`: Dagster's asset selection syntax (as the UI's search and
`dagster asset materialize --select` take it) over the products of every code location, so
that `customer/profiles+` reaches the federation's products too."""

from __future__ import annotations

import warnings

import dagster as dg

from mesh_platform.workspace import locations


class SelectionError(ValueError):
    pass


def products_by_location(names: list[str]) -> dict[str, dict[dg.AssetKey, dg.AssetsDefinition]]:
    """Each location's products: the assets of its `<location>_products` job."""
    out = {}
    for name in names:
        loc = locations()[name]
        repo = loc.definitions().get_repository_def()
        keys = repo.get_job(loc.job_name).asset_layer.selected_asset_keys
        out[name] = {k: repo.asset_graph.get(k).assets_def for k in keys}
    return out


def resolve(expression: str, names: list[str]) -> dict[str, list[dg.AssetKey]]:
    """The products `expression` selects, by location (only locations with a selected product)."""
    products = products_by_location(names)
    everything = [a for by_key in products.values() for a in by_key.values()]
    with warnings.catch_warnings():
        # Dagster's own parser passes its beta `include_sources` parameter (BetaWarning): not ours.
        warnings.simplefilter("ignore", dg.BetaWarning)
        try:
            selected = dg.AssetSelection.from_string(expression).resolve(everything, allow_missing=True)
        except dg.DagsterError as exc:  # its own class (DagsterInvalidAssetSelectionError) is not public
            raise SelectionError(f"--select {expression!r}: {exc}") from None
    if not selected:
        known = sorted(k.to_user_string() for by_key in products.values() for k in by_key)
        raise SelectionError(f"--select {expression!r} selects no product; the products are: {', '.join(known)}")
    return {
        name: sorted(selected & by_key.keys(), key=lambda k: k.to_user_string())
        for name, by_key in products.items()
        if selected & by_key.keys()
    }
