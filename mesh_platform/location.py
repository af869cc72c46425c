"""A code location from a folder: contracts/, sources/ and products/ in, Definitions out.

A domain team adds a product by dropping `contracts/<name>.odcs.yaml` and a `@product`
function named `<name>` in `products/`; nothing else changes. An older major version served
beside the latest is `contracts/<name>_v<N>.odcs.yaml` with a function `<name>_v<N>`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import dagster as dg

from mesh_platform import contract_versions, deployment, policies, registry
from mesh_platform.contracts import Contract, ContractError, load_contract
from mesh_platform.executor import EXECUTOR
from mesh_platform.governance import grants_asset
from mesh_platform.landing_watch import landing_sensor
from mesh_platform.products import product_asset, source_spec
from mesh_platform.runs import DOMAIN_TAG
from mesh_platform.sources import check_landing_path
from mesh_platform.spec import ProductSpec
from mesh_platform.storage import Catalog

PLATFORM_TEAM = "platform-team"
SCHEDULE = "0 2 * * *"  # daily, after the source systems' nightly exports


def location_definitions(folder: Path | str, name: str | None = None) -> dg.Definitions:
    folder = Path(folder).resolve()
    name = name or folder.name
    sources = _contracts(folder / "sources", name)
    contracts = _contracts(folder / "contracts", name)
    functions = _functions(folder / "products", name)
    for product_name, contract in contracts.items():
        if product_name not in functions:
            raise ContractError(
                contract.path, "schema[0].name",
                f"no @product function '{product_name}' in {folder / 'products'}",
            )
    for fn_name, (spec, path) in functions.items():
        if fn_name not in contracts:
            raise ContractError(path, fn_name, f"@product '{fn_name}' has no contract {folder / 'contracts' / fn_name}.odcs.yaml")
        unknown = [s for s in spec.sources if s not in sources]
        if unknown:
            raise ContractError(path, fn_name, f"undeclared sources {unknown}: no such contract in {folder / 'sources'}")
    for source in sources.values():
        check_landing_path(source)
    settings = deployment.Settings.from_env()
    for contract in contracts.values():
        contract.server(settings.env)  # each product has its place in the active environment
    check_overrides(name, sorted(sources), settings.source_overrides)
    own = {
        c.key: registry.Entry(c.key, name, c, functions[n][1], functions[n][0].inputs) for n, c in contracts.items()
    }
    unreadable: set[str] = set()  # locations that do not load: their own load says why
    others = registry.workspace_entries(skip=name, unreadable=unreadable)
    registry.check_location(name, own, others, unreadable)
    notices: dict[str, list[str]] = {}
    for fn_name, (spec, path) in list(functions.items()):
        resolved, notices[fn_name] = _resolve_inputs(spec, {**others, **own})
        functions[fn_name] = (resolved, path)
    # Breaking changes against the published contract need a new major version, and that may
    # not break a consumer still reading the old one.
    contract_versions.check_published(list(contracts.values()), lambda c: _published_place(c, settings),
                                      lambda: {**others, **own})
    warnings = policies.enforce(list(contracts.values()))

    assets = [
        product_asset(contracts[n], functions[n][0], sources, [str(w) for w in warnings if w.path == str(contracts[n].path)],
                      settings.env, notices[n])
        for n in sorted(contracts)
    ]
    # Platform-owned copies of the inputs of products that live in BigQuery (prod customer_360).
    from mesh_platform.cloud.gcp import location_resources, port_assets

    ports = port_assets(name, contracts, {n: f[0] for n, f in functions.items()}, settings.env)
    assets += ports
    # Every run of the location carries its domain: the queue's per-domain limit counts it.
    run_tags = {DOMAIN_TAG: name}
    job = dg.define_asset_job(f"{name}_products", selection=dg.AssetSelection.assets(*assets), tags=run_tags)
    automated = [a for a in assets if a.automation_conditions_by_key.get(a.key)]
    scheduled = [a for a in assets if a not in automated]
    grants = grants_asset(name, PLATFORM_TEAM, list(contracts.values()))
    automated.append(grants)
    # Products built from other products follow them through automation; the rest run daily.
    jobs, schedules = [job], []
    if scheduled:
        if len(scheduled) < len(assets):
            jobs.append(dg.define_asset_job(
                f"{name}_scheduled", selection=dg.AssetSelection.assets(*scheduled), tags=run_tags,
            ))
        schedules.append(dg.ScheduleDefinition(
            name=f"{name}_daily",
            job=jobs[-1],
            cron_schedule=SCHEDULE,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        ))
    from_landing = {n: spec.sources for n, (spec, _) in functions.items() if spec.sources}
    # The implicit default sensor starts stopped; this location's automation must not.
    sensors = [dg.AutomationConditionSensorDefinition(
        f"{name}_automation",
        target=dg.AssetSelection.assets(*automated),
        default_status=dg.DefaultSensorStatus.RUNNING,
        run_tags=run_tags,
    )]
    if from_landing:  # products rebuilt when their landing files change
        sensors.append(landing_sensor(name, sources, from_landing, contracts))
    return dg.Definitions(
        assets=[*(source_spec(s) for s in sources.values()), *assets, grants],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={**deployment.resources(consumer=name, settings=settings), **location_resources(ports, settings)},
        executor=EXECUTOR,
    )


def check_overrides(location: str, own_sources: list[str], overrides: dict[str, str]) -> None:
    """A MESH_SOURCE_* override must name a source: a misspelt one would silently leave the
    default landing data in use. This location checks the names that start with its own, and any
    that start with no location's name."""
    from mesh_platform.workspace import locations

    others = {n: sorted(p.stem.removesuffix(".odcs") for p in (loc.path.parent / "sources").glob("*.odcs.yaml"))
              for n, loc in locations().items() if n != location}
    valid = ({deployment.override_key(location, s) for s in own_sources}
             | {deployment.override_key(n, s) for n, srcs in others.items() for s in srcs})
    for key in sorted(overrides):
        mine = key.startswith(f"{location}_")
        nobodys = not any(key.startswith(f"{n}_") for n in [location, *others])
        if key not in valid and (mine or nobodys):
            names = sorted(f"{deployment.SOURCE_PREFIX}{v.upper()}" for v in valid)
            raise ContractError(
                f"{deployment.SOURCE_PREFIX}{key.upper()}", "(environment)",
                f"names no landing source; the sources are {names}",
            )


def _resolve_inputs(spec: ProductSpec, everything: dict[str, registry.Entry]) -> tuple[ProductSpec, list[str]]:
    """The spec with each pinned input ("customer/profiles@1") resolved to the product that
    serves it, and the warnings of pinned majors close to retirement. An input of a location
    that does not load stays as written: its read fails with the reason."""
    inputs, written, notices = [], [], []
    for name in spec.inputs:
        try:
            key = registry.resolve_input(name, everything)
        except LookupError:
            key = name
        inputs.append(key)
        if key != name:
            written.append((name, key))
        notice = registry.retirement_notice(name, everything[key]) if key in everything else None
        if notice:
            notices.append(notice)
    return dataclasses.replace(spec, inputs=tuple(inputs), written=tuple(written)), notices


def _published_place(contract: Contract, settings: deployment.Settings) -> tuple[Catalog, str, str] | None:
    """Where the contract text a product was last published with is recorded: its table's
    catalog in this environment (local SQL catalog, or Glue); None for ADLS and BigQuery."""
    from mesh_platform.places import table

    if contract.server(settings.env).type not in ("local", "glue"):
        return None
    place = table(contract, settings.env, settings.home, settings.catalog_uri)
    return place.catalog, place.namespace, place.name


def location_contracts(folder: Path | str) -> dict[str, Contract]:
    """The product contracts of a location folder, without loading its code."""
    folder = Path(folder).resolve()
    return _contracts(folder / "contracts", folder.name)


def _contracts(folder: Path, domain: str) -> dict[str, Contract]:
    out: dict[str, Contract] = {}
    for path in sorted(folder.glob("*.odcs.yaml")):
        contract = load_contract(path)
        if contract.domain != domain:
            raise ContractError(path, "domain", f"'{contract.domain}' but the file lives in domain '{domain}'")
        if path.name != f"{contract.name}.odcs.yaml":
            raise ContractError(path, "schema[0].name", f"'{contract.name}' must match the file name")
        out[contract.name] = contract
    return out


def _functions(folder: Path, domain: str) -> dict[str, tuple[ProductSpec, Path]]:
    found: dict[str, tuple[ProductSpec, Path]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"mesh_products.{domain}.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():
            product_spec = getattr(value, "mesh_product", None)
            if isinstance(product_spec, ProductSpec) and value.__module__ == module_name:
                found[value.__name__] = (product_spec, path)
    return found
