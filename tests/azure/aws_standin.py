"""A STAND-IN for `mesh_platform.cloud.aws.lake_formation_denial`, which the AWS branch provides
and this branch does not have. tests/azure/azure_support.py installs it only while that module
is missing, so that the Azure tests can run the real prod path of customer/insights, whose
inputs live on AWS.

It answers as Lake Formation's grants say, asking moto's Lake Formation (the grants the test
set-up made with boto3 from the contracts): no SELECT on the product's Glue table for the
reader's IAM role, no read. moto stores grants and never enforces them, so this is the check.
"""

from __future__ import annotations


def lake_formation_denial(table, consumer: str) -> str | None:
    import boto3

    from mesh_platform.deployment import deployment_file

    role = deployment_file("prod")["aws"]["principals"].get(consumer)
    if role is None:
        return f"Lake Formation: '{consumer}' has no IAM role in deployments/prod.yaml aws.principals"
    granted = boto3.client("lakeformation").list_permissions(
        Principal={"DataLakePrincipalIdentifier": role},
        Resource={"Table": {"DatabaseName": table.namespace, "Name": table.name}},
    )["PrincipalResourcePermissions"]
    if any("SELECT" in g["Permissions"] for g in granted):
        return None
    return f"Lake Formation grants {role} no SELECT on {table.namespace}.{table.name}"
