"""`mesh new`: a new data product (contract, function, test) in its domain's folder, or a new
domain (a code location in workspace.yaml and workspace-team.yaml). What it writes passes the
platform's policies and materializes as it stands; the team then fills in purpose, columns and
rules."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml

from mesh_platform.contracts import Contract, load_contract
from mesh_platform.location import location_contracts
from mesh_platform.workspace import WORKSPACE, locations

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TEAM_WORKSPACE = WORKSPACE.parent / "workspace-team.yaml"


class ScaffoldError(ValueError):
    pass


def new_product(key: str, from_source: str | None = None, inputs: list[str] = ()) -> list[Path]:
    """Write the contract, the function and a test of the product `key` ("domain/name"); the
    files written. Its columns are the source's (`from_source`) or its first input's."""
    domain, _, name = key.partition("/")
    folder = _domain_folder(domain)
    if not _NAME.match(name):
        raise ScaffoldError(f"'{name}': a product name is snake_case (letters, digits, _), e.g. {domain}/daily_summary")
    contract_path, code_path = folder / "contracts" / f"{name}.odcs.yaml", folder / "products" / f"{name}.py"
    test_path = folder / "tests" / f"test_{name}.py"
    for path in (contract_path, code_path, test_path):
        if path.exists():
            raise ScaffoldError(f"{path} exists already: {key} is a product of {domain}")
    if bool(from_source) == bool(inputs):
        raise ScaffoldError("give either --from-source SOURCE (a landing source of the domain) or --inputs KEY,...")
    siblings = location_contracts(folder)
    if from_source:
        sources = {c.name: c for c in (load_contract(p) for p in sorted((folder / "sources").glob("*.odcs.yaml")))}
        if from_source not in sources:
            raise ScaffoldError(f"no source '{from_source}' in {folder / 'sources'}{_hint(from_source, sources)}")
        template = sources[from_source]
    else:
        from mesh_platform.registry import workspace_entries

        everything = {**workspace_entries(skip=""), **{c.key: None for c in siblings.values()}}
        unknown = [i for i in inputs if i not in everything]
        if unknown:
            raise ScaffoldError(f"no product '{unknown[0]}' in the workspace{_hint(unknown[0], everything)}")
        template = everything[inputs[0]].contract if everything[inputs[0]] else siblings[inputs[0].split("/")[1]]
    contract_path.parent.mkdir(parents=True, exist_ok=True)
    code_path.parent.mkdir(parents=True, exist_ok=True)
    test_path.parent.mkdir(parents=True, exist_ok=True)
    contract_path.write_text(_contract(domain, name, template, next(iter(siblings.values()), None)))
    code_path.write_text(_code(name, from_source, list(inputs)))
    test_path.write_text(_test(domain, name, from_source, list(inputs)))
    return [contract_path, code_path, test_path]


def ungranted(key: str, inputs: list[str]) -> list[str]:
    """The inputs whose producers do not grant them to the new product's location yet: the
    line each producer's contract needs, for the message."""
    from mesh_platform.registry import workspace_entries

    domain = key.split("/")[0]
    out = []
    for entry in workspace_entries(skip=domain).values():
        if entry.key in inputs and domain not in entry.contract.readers:
            out.append(f"{entry.contract.path}: roles: - {{role: {domain}, access: read}}  (ask {entry.contract.team})")
    return out


def new_domain(name: str) -> list[Path]:
    """A new code location: its folder and definitions.py, and its entries in workspace.yaml and
    workspace-team.yaml (the next free port)."""
    if not _NAME.match(name):
        raise ScaffoldError(f"'{name}': a domain name is snake_case (letters, digits, _)")
    if name in locations():
        raise ScaffoldError(f"'{name}' is a code location of {WORKSPACE} already")
    folder = WORKSPACE.parent / "domains" / name
    if folder.exists():
        raise ScaffoldError(f"{folder} exists already")
    for sub in ("contracts", "sources", "products", "tests"):
        (folder / sub).mkdir(parents=True)
    definitions = folder / "definitions.py"
    definitions.write_text(
        f'"""The {name} domain\'s code location: its contracts, sources and products, in this folder."""\n\n'
        "from pathlib import Path\n\nimport dagster as dg\n\n"
        "from mesh_platform.location import location_definitions\n\n\n@dg.definitions\n"
        "def defs() -> dg.Definitions:\n    return location_definitions(Path(__file__).parent)\n"
    )
    # Appended as text, so that the files' comments stay.
    with WORKSPACE.open("a") as f:
        f.write(f"  - python_file:\n      relative_path: domains/{name}/definitions.py\n"
                f"      location_name: {name}\n      working_directory: .\n")
    ports = [e["grpc_server"]["port"] for e in yaml.safe_load(TEAM_WORKSPACE.read_text())["load_from"]]
    with TEAM_WORKSPACE.open("a") as f:
        f.write(f"  - grpc_server:\n      host: 127.0.0.1\n      port: {max(ports) + 1}\n      location_name: {name}\n")
    return [definitions, WORKSPACE, TEAM_WORKSPACE]


def _domain_folder(domain: str) -> Path:
    known = locations()
    if domain not in known:
        raise ScaffoldError(f"no code location '{domain}'{_hint(domain, known)}; `mesh new domain {domain}` adds one")
    return known[domain].path.parent


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; there are: {', '.join(sorted(known)) or 'none'}"


def _contract(domain: str, name: str, template: Contract, sibling: Contract | None) -> str:
    team = sibling.team if sibling else f"{domain}-team"
    columns = []
    for c in template.columns:
        fields = {"name": c.name, "logicalType": c.logical_type, "physicalType": c.physical_type}
        if c.required:
            fields["required"] = True
        if c.classification:
            fields["classification"] = c.classification
        columns.append(fields)
    prod = _prod_server(sibling, name)
    doc = {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": f"urn:mesh:{domain}:{name}",
        "name": name.replace("_", " ").capitalize(), "version": "0.1.0", "status": "draft", "domain": domain,
        "dataProduct": name, "tags": [domain],
        "description": {"purpose": f"TODO: what {domain}/{name} is for, and who reads it."},
        "servers": [{"server": "local", "type": "local", "environment": "dev", "format": "iceberg",
                     "path": f"warehouse/{domain}/{name}",
                     "description": "The Iceberg table in the mesh's local catalog, under MESH_HOME."},
                    *([prod] if prod else [])],
        "team": {"name": team},
        "slaProperties": [{"property": "latency", "value": 26, "unit": "h"}],
        "schema": [{
            "name": name, "physicalType": "table", "properties": columns,
            "quality": [{"name": "not_empty", "description": "The product has rows.", "type": "sql",
                         "query": "SELECT count(*) FROM ${object}", "mustBeGreaterThan": 0, "severity": "error"}],
        }],
    }
    header = (f"# {domain}/{name}: written by `mesh new product`. Fill in the purpose, the columns\n"
              "# (a DuckDB physicalType each) and the quality rules; add `roles` to let other domains read it.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def _prod_server(sibling: Contract | None, name: str) -> dict | None:
    """The domain's prod server, as its other products have it, for this product's name."""
    if sibling is None:
        return None
    server = next((s for s in sibling.servers if s.environment == "prod"), None)
    if server is None:
        return None
    fields = {k: (v.replace(sibling.name, name) if isinstance(v, str) and k in ("location", "path") else v)
              for k, v in server.fields.items()}
    return {"server": server.name, "type": server.type, "environment": "prod", **fields}


def _code(name: str, source: str | None, inputs: list[str]) -> str:
    if source:
        decl, body = f'sources=["{source}"]', f'    ctx.source("{source}").to_view("{source}")\n    return ctx.sql("SELECT * FROM {source}")\n'
    else:
        views = "".join(f'    ctx.product("{k}").to_view("{k.split("/")[1]}")\n' for k in inputs)
        decl, body = f"inputs={inputs!r}".replace("'", '"'), views + f'    return ctx.sql("SELECT * FROM {inputs[0].split("/")[1]}")\n'
    return (f'from mesh_platform import product\n\n\n@product({decl})\ndef {name}(ctx):\n'
            f'    # One SELECT over the views made here; its columns are the contract\'s.\n{body}')


def _test(domain: str, name: str, source: str | None, inputs: list[str]) -> str:
    upstream = "" if source else "".join(
        f'        materialize("{k.split("/")[0]}", instance, products=[dg.AssetKey({k.split("/")!r})])\n'
        for k in inputs)
    return f'''"""{domain}/{name} materialized by a real Dagster run on generated sample data."""

import dagster as dg

from mesh_platform.seed import generate_landing
from mesh_platform.storage import Catalog
from mesh_platform.workspace import materialize


def test_{name}_publishes(tmp_path, monkeypatch):
    monkeypatch.setenv("MESH_HOME", str(tmp_path))
    monkeypatch.delenv("MESH_LANDING", raising=False)
    generate_landing(tmp_path / "landing", customers=200, seed=7)
    with dg.instance_for_test() as instance:
{upstream}        result = materialize("{domain}", instance, products=[dg.AssetKey(["{domain}", "{name}"])])
    assert result.success
    published = Catalog(tmp_path).current("{domain}", "{name}")
    assert int(published.summary["total-records"]) > 0
'''
