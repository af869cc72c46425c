"""What the Azure tests share: the fake ARM endpoint as a fixture, the prod environment on the
emulators (Azurite for ADLS, moto for the inputs that live on AWS), and the AWS set-up this
branch does not provision itself.

The AWS part of prod (S3 buckets, Glue databases, Lake Formation grants, and the reader's Lake
Formation check `mesh_platform.cloud.aws.lake_formation_denial`) is another branch's work. Until
it is merged, the test set-up creates the buckets and grants with boto3 from the contracts, and
`lake_formation_denial` is served by `aws_standin.py` (a stand-in that asks moto's Lake
Formation, used only while the real module is missing).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import pytest
from fake_arm import FakeArm

from mesh_platform.cloud.infra import product_contracts
from mesh_platform.deployment import deployment_file


@pytest.fixture(scope="session")
def fake_arm_server() -> Iterator[FakeArm]:
    arm = FakeArm().start()
    yield arm
    arm.stop()


@pytest.fixture
def arm(fake_arm_server: FakeArm, monkeypatch: pytest.MonkeyPatch) -> FakeArm:
    """The FAKE ARM endpoint (tests/azure/fake_arm.py), emptied, as AZURE_RESOURCE_MANAGER_URL."""
    fake_arm_server.reset()
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", fake_arm_server.url)
    return fake_arm_server


@pytest.fixture
def prod(monkeypatch: pytest.MonkeyPatch):
    """MESH_ENV=prod for this test."""
    monkeypatch.setenv("MESH_ENV", "prod")


def aws_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS side of prod for the products that live there (on moto): their S3 buckets, and a
    Lake Formation SELECT grant on each product's Glue table for every reader its contract names,
    all read from the contracts and the deployment file."""
    import boto3

    aws = deployment_file("prod")["aws"]
    s3, lf = boto3.client("s3"), boto3.client("lakeformation")
    buckets = set()
    for contract in product_contracts():
        server = contract.server("prod")
        if server.type != "glue":
            continue
        bucket = server.get("location").removeprefix("s3://").split("/")[0]
        if bucket not in buckets:
            s3.create_bucket(Bucket=bucket)
            buckets.add(bucket)
        for reader in contract.readers:
            lf.grant_permissions(
                Principal={"DataLakePrincipalIdentifier": aws["principals"][reader]},
                Resource={"Table": {"DatabaseName": server.get("database"), "Name": contract.name}},
                Permissions=["SELECT", "DESCRIBE"],
            )
    if importlib.util.find_spec("mesh_platform.cloud.aws") is None:
        import aws_standin

        monkeypatch.setitem(sys.modules, "mesh_platform.cloud.aws", aws_standin)
