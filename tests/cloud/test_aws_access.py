"""A cross-domain read on AWS needs both the platform's grant (from the producer's contract) and
Lake Formation's: moto stores Lake Formation grants but enforces nothing, so the platform's
reader checks them itself, and a grant revoked outside the platform denies the read."""

from __future__ import annotations

import pytest
from aws_helpers import apply_aws, principal, prod, provisioner  # noqa: F401 (prod: a fixture)
from aws_helpers import materialize_on_aws
from conftest import step_failure_messages

from mesh_platform.access import AccessDenied
from mesh_platform.audit import AuditLog
from mesh_platform.cloud.aws import lake_formation_denial
from mesh_platform.deployment import resources
from mesh_platform.places import table
from mesh_platform.registry import product_contract


@pytest.fixture
def published(prod, aws, instance):
    """customer/profiles published in prod, and the grants on its table applied."""
    apply_aws()
    result = materialize_on_aws("customer", instance)
    assert result.success, step_failure_messages(result)
    apply_aws()
    return prod


def test_a_lake_formation_grant_revoked_outside_the_platform_denies_the_federations_read(published, aws):
    reader = resources("federation")["mesh"].reader("run-1")
    assert reader.read("customer/profiles").snapshot.snapshot_id  # granted by the contract and by LF

    aws.client("lakeformation").revoke_permissions(
        Principal={"DataLakePrincipalIdentifier": principal("federation")},
        Resource={"Table": {"DatabaseName": "customer-domain", "Name": "profiles"}}, Permissions=["SELECT"],
    )
    reason = (f"Lake Formation grants {principal('federation')} (code location federation) no SELECT on table "
              "customer-domain.profiles")
    with pytest.raises(AccessDenied) as denied:
        resources("federation")["mesh"].reader("run-2").read("customer/profiles")
    assert str(denied.value) == f"federation may not read customer/profiles: {reason}"

    (entry,) = AuditLog(published.home).entries(action="read_denied")
    assert (entry.actor, entry.product, entry.detail["reason"], entry.detail["run_id"]) == (
        "federation", "customer/profiles", reason, "run-2")
    # The contract still grants it: the drift check and the next apply put it back.
    assert [c.action for c in provisioner().plan()] == ["grant"]
    apply_aws()
    assert resources("federation")["mesh"].reader("run-3").read("customer/profiles").snapshot.snapshot_id


def test_a_location_without_an_aws_principal_is_denied(published):
    profiles = table(product_contract("customer/profiles"), "prod", published.home)
    assert lake_formation_denial(profiles, "stranger") == (
        "Lake Formation: code location 'stranger' has no AWS principal in the prod deployment file "
        "(aws.principals), so nothing grants it customer-domain.profiles")
    assert lake_formation_denial(profiles, "federation") is None

