"""Azure: where products with an `azure` server live in prod (ADLS Gen2), who may read them, and
what the platform provisions for them (the filesystem with its tags and ACLs, the resource group,
the Synapse workspace).

    adls         the storage: a product's abfss:// location, the account's clients, its Iceberg
                 catalog (AdlsCatalog), errors that name the account and filesystem
    acl          access compiled from the contract (POSIX ACL entries per reader), where it is
                 recorded and read back, and adls_denial for the platform's reader
    provisioner  AzureProvisioner: plan and apply, like Terraform (infra.Provisioner)

Importing this package loads no Azure SDK: the clients are imported where they are used.
"""

from mesh_platform.cloud.azure.acl import adls_denial
from mesh_platform.cloud.azure.adls import AzureStorageError, adls_table
from mesh_platform.cloud.azure.provisioner import AzureConflict, AzureProvisioner

__all__ = ["AzureConflict", "AzureProvisioner", "AzureStorageError", "adls_denial", "adls_table"]
