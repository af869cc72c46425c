"""Infrastructure reconciled like Terraform, on moto's server: plan reads AWS with boto3 and
lists the difference from the contracts, apply makes it so (revoking what they no longer grant,
and what was granted outside the platform), a second apply changes nothing, and the drift check
in the platform's code location reports what differs."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest
from aws_helpers import (  # noqa: F401 (prod: a fixture)
    DATABASES, PRODUCTS, apply_aws, create_tables, grants, principal, prod, provisioner, seed_grants, table_resource,
)

from mesh_platform.audit import AuditLog
from mesh_platform.cloud import infra
from mesh_platform.contracts import ReadGrant
from mesh_platform.infra_assets import DRIFT_CHECK, DRIFT_JOB, infra_key
from mesh_platform.workspace import locations

INTRUDER = "arn:aws:iam::123456789012:role/someone-else"


def provisioned(aws) -> None:
    """The seed's infrastructure with its tables: apply, the tables a first publish creates, apply."""
    apply_aws()
    create_tables(aws)
    apply_aws()


def _with_grants(key: str, *readers: ReadGrant) -> list:
    """The workspace's product contracts, with `key`'s grants replaced."""
    return [dataclasses.replace(c, grants=readers) if c.key == key else c for c in infra.product_contracts()]


def test_plan_on_an_empty_account_apply_and_a_second_apply_changes_nothing(prod, aws):
    p = provisioner()
    planned = [str(c) for c in p.plan()]
    for domain, database in DATABASES.items():
        assert f"+ aws: create s3 bucket mesh-{domain}-domain (region=us-east-1, tags=Domain={domain.capitalize()}, " \
               f"Owner={domain}-team, DataProduct=true)" in planned
        assert any(line.startswith(f"+ aws: create glue database {database} ") for line in planned)
        assert f"+ aws: grant lakeformation permissions of {principal(f'{domain}-team')} on database {database} " \
               f"(permissions=ALTER, CREATE_TABLE, DROP, principal_of={domain}-team)" in planned
    assert len(p.waiting()) == 5 and all("waits for the table's first publish" in w for w in p.waiting())

    done = apply_aws()
    assert [str(c) for c in done] == planned
    assert provisioner().plan() == []

    create_tables(aws)  # what the first publish of each product does
    assert [(c.action, c.resource) for c in provisioner().plan()] == [
        ("grant", f"lakeformation permissions of {principal(reader)} on table {DATABASES[d]}.{PRODUCTS[d].split('/')[1]}")
        for d, reader in (("customer", "federation"), ("orders", "customer"), ("orders", "federation"),
                          ("preferences", "customer"), ("preferences", "federation"))
    ]
    assert len(apply_aws()) == 5
    assert grants(aws) == seed_grants()
    assert apply_aws() == []  # the second apply changes nothing
    assert provisioner().plan() == [] and provisioner().waiting() == []

    logged = AuditLog(prod.home).entries()
    assert sum(e.action == "grant" and e.detail.get("cloud") == "aws" for e in logged) == 6 + 5  # owners (database, location), readers
    assert any(e.action == "infra_change" and e.detail.get("resource") == "glue database customer-domain" for e in logged)


def test_a_grant_removed_from_a_contract_is_revoked(prod, aws):
    provisioned(aws)
    contracts = _with_grants("customer/profiles")  # the federation's role removed from the contract
    p = provisioner(contracts)
    changes = p.plan()
    assert [str(c) for c in changes] == [
        f"- aws: revoke lakeformation permissions of {principal('federation')} on table customer-domain.profiles "
        "(permissions=DESCRIBE, SELECT, principal_of=federation)"
    ]
    p.apply(changes)
    held = grants(aws)
    assert not any(r == table_resource("customer-domain", "profiles") for _, r, _ in held)
    assert held == seed_grants() - {(principal("federation"), table_resource("customer-domain", "profiles"),
                                     frozenset({"SELECT", "DESCRIBE"}))}
    assert provisioner(contracts).plan() == []


def test_a_masking_grant_is_column_level(prod, aws):
    provisioned(aws)
    contracts = _with_grants("customer/profiles", ReadGrant("federation", mask=("email",), exclude=("first_name", "last_name")))
    p = provisioner(contracts)
    allowed = ["country", "customer_id", "segment", "signup_date", "updated_at"]
    assert sorted(str(c) for c in p.plan()) == sorted([
        f"+ aws: grant lakeformation permissions of {principal('federation')} on columns "
        f"customer-domain.profiles({', '.join(allowed)}) (permissions=SELECT, principal_of=federation)",
        f"- aws: revoke lakeformation permissions of {principal('federation')} on table customer-domain.profiles "
        "(permissions=SELECT, principal_of=federation)",
    ])
    p.apply(p.plan())
    lf = aws.client("lakeformation")
    listed = lf.list_permissions(Principal={"DataLakePrincipalIdentifier": principal("federation")},
                                 Resource={"Table": {"DatabaseName": "customer-domain", "Name": "profiles"}})
    assert [e["Permissions"] for e in listed["PrincipalResourcePermissions"]] == [["DESCRIBE"]]
    columns = [e["Resource"]["TableWithColumns"] for e in grants_raw(aws) if "TableWithColumns" in e["Resource"]]
    assert columns == [{"DatabaseName": "customer-domain", "Name": "profiles", "ColumnNames": allowed}]
    assert provisioner(contracts).plan() == []


def grants_raw(aws) -> list[dict]:
    from mesh_platform.cloud.aws import list_permissions

    return list_permissions(aws.client("lakeformation"))


def test_a_grant_made_outside_the_platform_is_drift_until_apply_revokes_it(prod, aws):
    provisioned(aws)
    lf = aws.client("lakeformation")
    lf.grant_permissions(Principal={"DataLakePrincipalIdentifier": INTRUDER},
                         Resource={"Table": {"DatabaseName": "orders-domain", "Name": "history"}},
                         Permissions=["SELECT"], PermissionsWithGrantOption=["SELECT"])
    expected = (f"- aws: revoke lakeformation permissions of {INTRUDER} on table orders-domain.history "
                "(grant_option=SELECT, permissions=SELECT, principal_of=not in the deployment file)")
    assert [str(c) for c in provisioner().plan()] == [expected]

    defs = locations()["federation"].definitions()  # MESH_ENV=prod: the infra assets are there
    with dg.instance_for_test() as instance:
        drift = defs.resolve_job_def(DRIFT_JOB).execute_in_process(instance=instance, raise_on_error=False)
        (evaluation,) = drift.get_asset_check_evaluations()
        assert evaluation.check_name == DRIFT_CHECK and evaluation.asset_key == infra_key("aws")
        assert not evaluation.passed
        assert evaluation.metadata["changes"].value == [expected]
        assert INTRUDER in evaluation.description

        applied = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[infra_key("aws")], raise_on_error=False)
        assert applied.success
        (materialization,) = applied.get_asset_materialization_events()
        assert materialization.materialization.metadata["changes"].value == [expected]

        again = defs.resolve_job_def(DRIFT_JOB).execute_in_process(instance=instance, raise_on_error=False)
        (evaluation,) = again.get_asset_check_evaluations()
        assert evaluation.passed, evaluation.description
    assert grants(aws) == seed_grants()


def test_a_grant_revoked_or_a_tag_edited_outside_the_platform_is_put_back(prod, aws):
    provisioned(aws)
    aws.client("lakeformation").revoke_permissions(
        Principal={"DataLakePrincipalIdentifier": principal("federation")},
        Resource={"Table": {"DatabaseName": "preferences-domain", "Name": "settings"}}, Permissions=["SELECT"])
    arn = "arn:aws:glue:us-east-1:123456789012:database/preferences-domain"
    aws.client("glue").tag_resource(ResourceArn=arn, TagsToAdd={"Owner": "somebody", "CostCenter": "42"})
    assert sorted(str(c) for c in provisioner().plan()) == [
        f"+ aws: grant lakeformation permissions of {principal('federation')} on table preferences-domain.settings "
        "(permissions=SELECT, principal_of=federation)",
        "~ aws: update glue database preferences-domain tags (tags=Owner=preferences-team, was=Owner=somebody)",
    ]
    apply_aws()
    assert grants(aws) == seed_grants()
    tags = aws.client("glue").get_tags(ResourceArn=arn)["Tags"]
    assert tags == {"Domain": "Preferences", "Owner": "preferences-team", "DataProduct": "true", "CostCenter": "42"}


def test_a_reader_without_a_principal_is_a_clear_error(prod, aws):
    contracts = _with_grants("orders/history", ReadGrant("analytics"))
    with pytest.raises(ValueError, match=r"deployment file prod.yaml: aws.principals has no 'analytics' "
                                         r"\(a reader of orders/history\)"):
        provisioner(contracts).plan()


def test_infra_assets_exist_in_prod_only(prod, monkeypatch):
    defs = locations()["federation"].definitions()
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == infra_key("aws"))
    assert spec.owners == ["team:platform-team"] and spec.group_name == "platform"
    assert "aws" in spec.kinds
    checks = {k for c in defs.asset_checks if isinstance(c, dg.AssetChecksDefinition) for k in c.check_keys
              if k.asset_key == infra_key("aws")}
    assert checks == {dg.AssetCheckKey(infra_key("aws"), DRIFT_CHECK)}
    keys = {s.key for s in defs.resolve_all_asset_specs()}
    assert {infra_key(c) for c in ("aws", "gcp", "azure")} <= keys
    assert defs.resolve_schedule_def(f"{DRIFT_JOB}_hourly").cron_schedule == "0 * * * *"

    monkeypatch.setenv("MESH_ENV", "dev")
    dev_keys = {s.key for s in locations()["federation"].definitions().resolve_all_asset_specs()}
    assert not any(k.path[:2] == ["platform", "infra"] for k in dev_keys)


def test_masked_columns_are_not_a_lake_formation_denial_but_missing_ones_are(prod, aws):
    from mesh_platform.cloud.aws import lake_formation_denial
    from mesh_platform.places import table
    from mesh_platform.registry import product_contract

    provisioned(aws)
    masked = ReadGrant("federation", mask=("email",), exclude=("first_name",))
    contracts = _with_grants("customer/profiles", masked)
    p = provisioner(contracts)
    p.apply(p.plan())
    contract = next(c for c in contracts if c.key == "customer/profiles")
    profiles = table(contract, "prod", prod.home)
    assert lake_formation_denial(profiles, "federation", contract) is None
    # The workspace's contract delivers every column in the clear: LF's column grant is too narrow.
    denial = lake_formation_denial(profiles, "federation", product_contract("customer/profiles"))
    assert denial == (f"Lake Formation grants {principal('federation')} (code location federation) SELECT on columns "
                      "['country', 'customer_id', 'last_name', 'segment', 'signup_date', 'updated_at'] of table "
                      "customer-domain.profiles only, not on ['email', 'first_name'], which its contract grant "
                      "delivers in the clear")


def test_select_listed_as_every_column_counts_as_select_on_the_table(prod, aws):
    """AWS lists SELECT on a table as TableWithColumns with a ColumnWildcard: the same grant."""
    from mesh_platform.cloud.aws import lake_formation_denial
    from mesh_platform.places import table
    from mesh_platform.registry import product_contract

    provisioned(aws)
    lf = aws.client("lakeformation")
    federation = {"DataLakePrincipalIdentifier": principal("federation")}
    lf.revoke_permissions(Principal=federation, Resource={"Table": {"DatabaseName": "customer-domain", "Name": "profiles"}},
                          Permissions=["SELECT"])
    lf.grant_permissions(Principal=federation, Permissions=["SELECT"], Resource={"TableWithColumns": {
        "DatabaseName": "customer-domain", "Name": "profiles", "ColumnWildcard": {}}})
    assert provisioner().plan() == []
    profiles = table(product_contract("customer/profiles"), "prod", prod.home)
    assert lake_formation_denial(profiles, "federation") is None

    # Every column but two: what the contract grants (all in the clear) is not covered.
    lf.revoke_permissions(Principal=federation, Permissions=["SELECT"], Resource={"TableWithColumns": {
        "DatabaseName": "customer-domain", "Name": "profiles", "ColumnWildcard": {}}})
    lf.grant_permissions(Principal=federation, Permissions=["SELECT"], Resource={"TableWithColumns": {
        "DatabaseName": "customer-domain", "Name": "profiles", "ColumnWildcard": {"ExcludedColumnNames": ["email", "last_name"]}}})
    assert "not on ['email', 'last_name']" in lake_formation_denial(profiles, "federation")
    assert sorted(c.action for c in provisioner().plan()) == ["grant", "revoke"]
    apply_aws()
    assert grants(aws) == seed_grants()
