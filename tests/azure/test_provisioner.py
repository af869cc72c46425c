"""The Azure infrastructure of customer/insights, reconciled by the platform: the ADLS filesystem
with its tags and ACL (on Azurite), the resource group and the Synapse workspace (through the
real azure-mgmt-resource and azure-mgmt-synapse clients, against mesh_platform/emulators/fake_arm.py, a FAKE
Azure Resource Manager endpoint on loopback: not Azure, see its docstring).
"""

from __future__ import annotations

import pytest
from azure_support import prod  # noqa: F401 (a fixture)
from conftest import ROOT

from mesh_platform.audit import AuditLog
from mesh_platform.cloud import infra
from mesh_platform.cloud.azure import AzureConflict, adls_denial
from mesh_platform.cloud.infra import product_contracts, provisioner
from mesh_platform.contracts import load_contract
from mesh_platform.deployment import Settings
from mesh_platform.places import table
from mesh_platform.registry import product_contract

SUB = "00000000-0000-0000-0000-000000000000"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/mesh-customer-insights"
WS_ID = f"{RG_ID}/providers/Microsoft.Synapse/workspaces/customer-insights"
SEED_TAGS = {"DataProduct": "CustomerInsights", "Domain": "Customer", "Owner": "customer-analytics"}
ANALYTICS, FEDERATION = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
ACL_RECORD = (f"user:{ANALYTICS}:rwx,default:user:{ANALYTICS}:rwx,"
              f"user:{FEDERATION}:r-x,default:user:{FEDERATION}:r-x")
STORAGE = {"accountUrl": "https://meshcustomerinsights.dfs.core.windows.net", "filesystem": "customer-insights"}


def azure_provisioner(contracts=None):
    return provisioner("azure", Settings.from_env(), contracts or product_contracts())


def container_metadata(azure) -> dict:
    with azure.client() as service:
        return dict(service.get_container_client("customer-insights").get_container_properties().metadata)


def summary(changes) -> list[tuple[str, str]]:
    return [(c.action, c.resource) for c in changes]


def test_plan_apply_and_the_requests_the_sdks_send(mesh_home, azure, arm, prod):  # noqa: F811
    planned = azure_provisioner().plan()
    assert summary(planned) == [
        ("create", "adls filesystem customer-insights (meshcustomerinsights)"),
        ("grant", "adls acl customer-insights/insights customer-analytics"),
        ("grant", "adls acl customer-insights/insights federation"),
        ("create", "resource group mesh-customer-insights"),
        ("create", "synapse workspace customer-insights"),
    ]
    assert planned[2].detail == {"principal": FEDERATION, "permissions": "r-x", "enforced_by": "platform reader"}
    assert arm.calls("PUT") == [] and arm.calls("PATCH") == []  # plan reads only

    arm.forget_requests()
    done = infra.apply(Settings.from_env(), clouds=["azure"])
    assert summary(done) == summary(planned)

    # The filesystem: the seed's tags, and the ACL compiled from the contract, recorded on it.
    assert container_metadata(azure) == {**SEED_TAGS, "mesh_acl_insights": ACL_RECORD}

    # The resource group, as azure-mgmt-resource serialised it.
    [rg_put] = [r for r in arm.calls("PUT") if r.path.lower().endswith("/resourcegroups/mesh-customer-insights")]
    assert rg_put.path == f"/subscriptions/{SUB}/resourcegroups/mesh-customer-insights"
    assert rg_put.body == {"location": "westeurope", "tags": SEED_TAGS}

    # The workspace, as azure-mgmt-synapse serialised it: name in the URL, system-assigned
    # identity, the product's filesystem as default storage, the seed's tags.
    [ws_put] = arm.calls("PUT", "/workspaces/")
    assert ws_put.path == WS_ID
    assert ws_put.query == {"api-version": "2021-03-01"}
    assert ws_put.body == {
        "location": "westeurope", "tags": SEED_TAGS, "identity": {"type": "SystemAssigned"},
        "properties": {"defaultDataLakeStorage": STORAGE},
    }
    # The long-running operation: polled while InProgress until Succeeded, then the workspace
    # read back; only then does the SDK's poller return.
    after = [(r.method, r.path.rsplit("/", 2)[-2]) for r in arm.requests[arm.requests.index(ws_put) + 1:]]
    assert after[:3] == [("GET", "operationStatuses"), ("GET", "operationStatuses"), ("GET", "workspaces")]
    stored = arm.resources[WS_ID.lower()]
    assert stored["properties"]["provisioningState"] == "Succeeded"
    assert stored["identity"]["type"] == "SystemAssigned" and stored["identity"]["principalId"]

    # Each change is in the audit log.
    entries = AuditLog(mesh_home).entries()
    assert [(e.action, e.detail["resource"]) for e in entries] == [(a if a == "grant" else "infra_change", r) for a, r in summary(done)]

    # Idempotent: nothing left to do, and applying again sends no write.
    arm.forget_requests()
    assert azure_provisioner().plan() == []
    assert infra.apply(Settings.from_env(), clouds=["azure"]) == []
    assert [r.method for r in arm.requests if r.method not in ("GET", "HEAD")] == []


def test_drift_is_a_non_empty_plan_and_apply_repairs_it(mesh_home, azure, arm, prod):  # noqa: F811
    infra.apply(Settings.from_env(), clouds=["azure"])
    # Someone retags the filesystem and the workspace.
    with azure.client() as service:
        service.get_container_client("customer-insights").set_container_metadata(
            {**container_metadata(azure), "Owner": "someone-else"}
        )
    arm.resources[WS_ID.lower()]["tags"] = {"DataProduct": "CustomerInsights", "CostCenter": "42"}

    planned = azure_provisioner().plan()
    assert summary(planned) == [
        ("update", "adls filesystem customer-insights (meshcustomerinsights)"),
        ("update", "synapse workspace customer-insights"),
    ]
    assert planned[0].detail == {"tags": {"Owner": "customer-analytics"}, "actual": {"Owner": "someone-else"}}
    assert planned[1].detail["tags"] == {"Domain": "Customer", "Owner": "customer-analytics"}

    arm.forget_requests()
    azure_provisioner().apply(planned)
    [patch] = arm.calls("PATCH", "/workspaces/")
    # Tags the platform does not own (CostCenter) are kept; identity stays system-assigned.
    assert patch.body == {"tags": {**SEED_TAGS, "CostCenter": "42"}, "identity": {"type": "SystemAssigned"}}
    assert container_metadata(azure)["Owner"] == "customer-analytics"
    assert azure_provisioner().plan() == []


def contract_with_roles(tmp_path, roles: str):
    text = (ROOT / "domains/customer/contracts/insights.odcs.yaml").read_text()
    old = "roles:\n  - {role: federation, access: read, description: The platform's federated products.}\n"
    assert old in text
    path = tmp_path / "customer" / "contracts" / "insights.odcs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(old, roles))
    return load_contract(path)


@pytest.mark.parametrize("roles", [
    "roles: []\n",  # federation's grant removed from the contract
    # Masked for federation: the files hold email in the clear, so no storage access at all.
    "roles:\n  - {role: federation, access: read, customProperties: [{property: mask, value: [email]}]}\n",
])
def test_access_follows_the_contract(mesh_home, azure, arm, prod, tmp_path, roles):  # noqa: F811
    infra.apply(Settings.from_env(), clouds=["azure"])
    changed = contract_with_roles(tmp_path, roles)
    planned = azure_provisioner([changed]).plan()
    assert summary(planned) == [("revoke", "adls acl customer-insights/insights federation")]
    assert planned[0].detail == {"principal": FEDERATION, "permissions": "r-x", "enforced_by": "platform reader"}
    azure_provisioner([changed]).apply(planned)
    assert container_metadata(azure)["mesh_acl_insights"] == f"user:{ANALYTICS}:rwx,default:user:{ANALYTICS}:rwx"
    assert azure_provisioner([changed]).plan() == []

    # The workspace's contract (which still grants federation in the clear) and ADLS now
    # disagree: the platform's reader refuses, naming the ACL.
    t = table(product_contract("customer/insights"), "prod", mesh_home)
    assert "gives federation (Entra ID object 22222222" in adls_denial(t, "federation")


def test_an_existing_workspace_with_other_storage_is_a_conflict_naming_it(mesh_home, azure, arm, prod):  # noqa: F811
    arm.put_resource(RG_ID, {"name": "mesh-customer-insights", "location": "westeurope", "tags": {}})
    arm.put_resource(WS_ID, {
        "name": "customer-insights", "type": "Microsoft.Synapse/workspaces", "location": "westeurope",
        "identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"}, "tags": SEED_TAGS,
        "properties": {"defaultDataLakeStorage": {"accountUrl": "https://otheraccount.dfs.core.windows.net",
                                                  "filesystem": "other"}, "provisioningState": "Succeeded"},
    })
    with pytest.raises(AzureConflict) as conflict:
        azure_provisioner().plan()
    message = str(conflict.value)
    assert message.startswith(f"synapse workspace 'customer-insights' ({WS_ID}) exists, but its default data lake storage is "
                              "https://otheraccount.dfs.core.windows.net/other, not "
                              "https://meshcustomerinsights.dfs.core.windows.net/customer-insights")
    assert "insights.odcs.yaml" in message and "Synapse cannot change these" in message
    assert arm.calls("PUT") == []


def test_an_existing_workspace_in_another_region_is_a_conflict(mesh_home, azure, arm, prod):  # noqa: F811
    arm.put_resource(RG_ID, {"name": "mesh-customer-insights", "location": "westeurope", "tags": SEED_TAGS})
    arm.put_resource(WS_ID, {"name": "customer-insights", "location": "northeurope", "tags": SEED_TAGS,
                             "identity": {"type": "SystemAssigned"},
                             "properties": {"defaultDataLakeStorage": STORAGE}})
    with pytest.raises(AzureConflict, match="it is in region 'northeurope', not 'westeurope'"):
        azure_provisioner().plan()


def test_an_existing_workspace_without_identity_gets_one(mesh_home, azure, arm, prod):  # noqa: F811
    arm.put_resource(RG_ID, {"name": "mesh-customer-insights", "location": "westeurope", "tags": SEED_TAGS})
    arm.put_resource(WS_ID, {"name": "customer-insights", "location": "West Europe", "tags": {},
                             "properties": {"defaultDataLakeStorage": {**STORAGE, "accountUrl": STORAGE["accountUrl"] + "/"},
                                            "provisioningState": "Succeeded"}})
    planned = [c for c in azure_provisioner().plan() if c.resource.startswith("synapse")]
    assert summary(planned) == [("update", "synapse workspace customer-insights")]
    assert planned[0].detail["identity"] == "SystemAssigned" and planned[0].detail["actual_identity"] == "None"
    arm.forget_requests()
    azure_provisioner().apply(planned)
    [patch] = arm.calls("PATCH")
    assert patch.body == {"tags": SEED_TAGS, "identity": {"type": "SystemAssigned"}}
    assert arm.resources[WS_ID.lower()]["identity"]["principalId"]


def test_resource_manager_over_plain_http_only_on_loopback(mesh_home, azure, prod, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", "http://arm.example.com")
    with pytest.raises(ValueError, match="plain HTTP is allowed to a loopback endpoint only"):
        azure_provisioner().plan()


def test_infrastructure_exists_in_prod_only(mesh_home):
    with pytest.raises(ValueError, match="prod environment only"):
        azure_provisioner()
