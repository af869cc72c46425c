"""The Azure pieces that need no server: ADLS locations, the access and tags compiled from a
contract, and how settings pick the endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_platform.cloud.azure.acl import MissingPrincipal, acl_spec, compile_acl, parse_spec, record_key
from mesh_platform.cloud.azure.adls import AdlsLocation, Connection
from mesh_platform.cloud.azure.provisioner import product_tags
from mesh_platform.contracts import ContractError, load_contract
from mesh_platform.deployment import azure_settings, deployment_file
from mesh_platform.places import table

ROOT = Path(__file__).resolve().parents[2]
INSIGHTS = ROOT / "domains/customer/contracts/insights.odcs.yaml"
PRINCIPALS = deployment_file("prod")["azure"]["principals"]


def test_adls_location():
    loc = AdlsLocation.parse("abfss://customer-insights@meshcustomerinsights.dfs.core.windows.net/insights/")
    assert (loc.account, loc.filesystem, loc.path) == ("meshcustomerinsights", "customer-insights", "insights")
    assert loc.uri == "abfss://customer-insights@meshcustomerinsights.dfs.core.windows.net/insights"
    assert loc.dfs_url == "https://meshcustomerinsights.dfs.core.windows.net"
    assert loc.fs_path == "customer-insights/insights"
    assert AdlsLocation.parse("abfss://fs1@acct1.dfs.core.chinacloudapi.cn/a/b").suffix == "core.chinacloudapi.cn"
    for bad, why in [
        ("s3://bucket/insights", "is not an ADLS Gen2 table location"),
        ("abfss://customer-insights@meshcustomerinsights.dfs.core.windows.net/", "is not an ADLS Gen2 table location"),
        ("abfss://Customer_Insights@meshcustomerinsights.dfs.core.windows.net/x", "not a valid filesystem"),
        ("abfss://fs-1@Mesh-Account.dfs.core.windows.net/x", "not a valid storage account name"),
    ]:
        with pytest.raises(ValueError, match=why):
            AdlsLocation.parse(bad)


def contract_variant(tmp_path, old: str, new: str):
    text = INSIGHTS.read_text()
    assert old in text
    path = tmp_path / "customer/contracts/insights.odcs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(old, new))
    return load_contract(path)


def test_a_bad_azure_server_fails_naming_the_contract_and_field(tmp_path):
    good = "abfss://customer-insights@meshcustomerinsights.dfs.core.windows.net/insights"
    contract = contract_variant(tmp_path, good, "abfss://customer-insights@otheraccount.dfs.core.windows.net/insights")
    with pytest.raises(ContractError) as err:
        table(contract, "prod", tmp_path)
    assert err.value.path == str(contract.path) and err.value.field == "servers (azure).location"
    assert "'otheraccount' is not the prod deployment's ('meshcustomerinsights'" in str(err.value)
    contract = load_contract(contract_variant(tmp_path / "x", good, "wasbs://insights").path)
    with pytest.raises(ContractError, match="is not an ADLS Gen2 table location"):
        table(contract, "prod", tmp_path)


def test_access_is_compiled_from_the_contract(tmp_path):
    contract = load_contract(INSIGHTS)
    owner, reader = PRINCIPALS["customer-analytics"], PRINCIPALS["federation"]
    assert compile_acl(contract, PRINCIPALS) == {owner: "rwx", reader: "r-x"}
    spec = acl_spec(compile_acl(contract, PRINCIPALS))
    assert spec == f"user:{owner}:rwx,default:user:{owner}:rwx,user:{reader}:r-x,default:user:{reader}:r-x"
    # Base entries and default entries are not grants.
    assert parse_spec(f"user::rwx,group::r-x,other::---,{spec},mask::r-x") == {owner: "rwx", reader: "r-x"}
    assert record_key(AdlsLocation.parse(contract.server("prod").get("location"))) == "mesh_acl_insights"

    # A reader whose grant masks a column gets no storage access: it reads through the platform.
    masked = contract_variant(
        tmp_path, "  - {role: federation, access: read, description: The platform's federated products.}\n",
        "  - {role: federation, access: read, customProperties: [{property: mask, value: [email]}]}\n",
    )
    assert compile_acl(masked, PRINCIPALS) == {owner: "rwx"}
    # A reader with no Entra ID object in the deployment file cannot be granted.
    with pytest.raises(MissingPrincipal, match="the reader 'federation' has no Entra ID object id in "
                                                "mesh_platform/deployments/prod.yaml azure.principals"):
        compile_acl(contract, {"customer-analytics": owner})


def test_tags_are_the_seeds():
    assert product_tags(load_contract(INSIGHTS)) == {
        "DataProduct": "CustomerInsights", "Domain": "Customer", "Owner": "customer-analytics",
    }
    assert product_tags(load_contract(ROOT / "domains/customer/contracts/profiles.odcs.yaml"))["DataProduct"] == "CustomerProfiles"


def test_azure_settings_and_endpoints(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_RESOURCE_MANAGER_URL", raising=False)
    assert azure_settings() == {}
    public = Connection.for_account("meshcustomerinsights")
    assert public.blob_url == "https://meshcustomerinsights.blob.core.windows.net" and not public.emulated
    assert public.fileio_properties() == {"adls.account-name": "meshcustomerinsights"}

    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", "http://127.0.0.1:9")
    key = "DefaultEndpointsProtocol=https;AccountName=meshcustomerinsights;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", key)
    assert azure_settings() == {"connection-string": key, "resource-manager-url": "http://127.0.0.1:9"}
    conn = Connection.for_account("meshcustomerinsights")
    assert conn.blob_url == "https://meshcustomerinsights.blob.core.windows.net" and not conn.emulated
    assert conn.fileio_properties() == {"adls.connection-string": key}

    azurite = "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    conn = Connection.for_account("meshcustomerinsights")  # an emulator serves one account, whatever its name
    assert conn.blob_url == "http://127.0.0.1:10000/devstoreaccount1" and conn.emulated
