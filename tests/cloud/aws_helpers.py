"""What the AWS tests share: the prod environment on the session's moto server, the seed's
resources as boto3 reads them back, and product rows read from either environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pyarrow.dataset as ds
import pytest

from mesh_platform.cloud import infra
from mesh_platform.cloud.aws import AwsProvisioner, list_permissions
from mesh_platform.deployment import Settings, deployment_file
from mesh_platform.places import table
from mesh_platform.registry import product_contract
from mesh_platform.workspace import locations

DOMAINS = ("customer", "orders", "preferences")
PRODUCTS = {"customer": "customer/profiles", "orders": "orders/history", "preferences": "preferences/settings"}
DATABASES = {"customer": "customer-domain", "orders": "orders-domain", "preferences": "preferences-domain"}
TEAMS = {"customer": "customer-team", "orders": "orders-team", "preferences": "preferences-team"}


def principal(name: str) -> str:
    return deployment_file("prod")["aws"]["principals"][name]


@pytest.fixture
def prod(aws, mesh_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """MESH_ENV=prod on a clean moto server, a temporary home with the hand-written landing set."""
    monkeypatch.setenv("MESH_ENV", "prod")
    return Settings.from_env()


def apply_aws() -> list:
    return infra.apply(Settings.from_env(), ["aws"])


def provisioner(contracts=None) -> AwsProvisioner:
    return AwsProvisioner(Settings.from_env(), infra.product_contracts() if contracts is None else contracts)


def create_tables(aws) -> None:
    """The three product tables in Glue, as a first publish leaves them (LF grants need them)."""
    glue = aws.client("glue")
    for domain, key in PRODUCTS.items():
        glue.create_table(DatabaseName=DATABASES[domain], TableInput={"Name": key.split("/")[1]})


def grants(aws) -> set[tuple[str, str, frozenset[str]]]:
    """Every Lake Formation permission: (principal, resource as JSON, permissions)."""
    return {
        (e["Principal"]["DataLakePrincipalIdentifier"], json.dumps(e["Resource"], sort_keys=True), frozenset(e["Permissions"]))
        for e in list_permissions(aws.client("lakeformation"))
    }


def table_resource(database: str, name: str) -> str:
    return json.dumps({"Table": {"DatabaseName": database, "Name": name}}, sort_keys=True)


def materialize_on_aws(location: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """A real run of the location's products that live on AWS in prod (customer/insights lives on
    Azure: tests/azure runs it)."""
    loc = locations()[location]
    defs = loc.definitions()
    on_aws = [dg.AssetKey(c.key.split("/")) for c in infra.product_contracts()
              if c.domain == location and c.server("prod").type == "glue"]
    return defs.resolve_job_def(loc.job_name).execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=on_aws)


def seed_grants() -> set[tuple[str, str, frozenset[str]]]:
    """What the seed's contracts imply once every table exists: each domain team owns its
    database and bucket; the federation reads the three domain products, and the customer
    location (customer/insights) reads orders/history and preferences/settings."""
    out = {(principal("customer"), table_resource("orders-domain", "history"), frozenset({"SELECT", "DESCRIBE"})),
           (principal("customer"), table_resource("preferences-domain", "settings"), frozenset({"SELECT", "DESCRIBE"}))}
    for domain, key in PRODUCTS.items():
        db, team = DATABASES[domain], principal(TEAMS[domain])
        out.add((team, json.dumps({"Database": {"Name": db}}, sort_keys=True), frozenset({"CREATE_TABLE", "ALTER", "DROP"})))
        out.add((team, json.dumps({"DataLocation": {"ResourceArn": f"arn:aws:s3:::mesh-{domain}-domain"}}, sort_keys=True),
                 frozenset({"DATA_LOCATION_ACCESS"})))
        out.add((principal("federation"), table_resource(db, key.split("/")[1]), frozenset({"SELECT", "DESCRIBE"})))
    return out


def rows(key: str, env: str, home: Path) -> list[dict]:
    """A product's current rows in `env`, ordered by its primary key."""
    contract = product_contract(key)
    t = table(contract, env, home)
    snap = t.current()
    assert snap is not None and snap.snapshot_id is not None, f"{key} is not published in {env}"
    fs, to_path = t.catalog.filesystem()
    data = ds.dataset([to_path(f) for f in snap.files], filesystem=fs, format="parquet").to_table()
    return data.sort_by([(c, "ascending") for c in contract.primary_key]).to_pylist()


def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MESH_SOURCE_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("MESH_LANDING", raising=False)
